"""HTTP: the app factory, ASGI middleware, dependencies, bearer tokens, the OpenAPI document and one
router per function."""
