"""The API's routes, one router per function: each function serves its router, and the
docs function describes them all in one OpenAPI document."""
