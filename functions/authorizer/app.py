"""API Gateway (HTTP API) Lambda authorizer: `Authorization: Bearer <token>` against stored hashes.

Answers in the simple-response format (payload 2.0). API Gateway answers 401 itself
when the header is missing; a refused token gets 403 from API Gateway. Fails closed:
if the hashes cannot be read, every request is refused. The token is never logged.

A request is refused as malformed before the hashes are read, whatever the event's shape
(`headers: null`, a header value that is not a string, two spellings of the header): only
a failure to read the hashes is logged as a configuration failure.
"""

from __future__ import annotations

from typing import Any

from prediction_service.observability import logger
from prediction_service.web.auth import bearer_token, default_verifier, principal_for


def authorization_header(event: object) -> object:
    """The Authorization header's value as the event holds it, under any case of its name; None
    when absent, when the event has no headers object, or when two spellings of the name are given.
    The value may be anything: `bearer_token` reads only a well-formed string."""
    headers = event.get("headers") if isinstance(event, dict) else None
    if not isinstance(headers, dict):
        return None
    values = [v for k, v in headers.items() if isinstance(k, str) and k.lower() == "authorization"]
    return values[0] if len(values) == 1 else None


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    route = event.get("routeKey", "?") if isinstance(event, dict) else "?"
    token = bearer_token(authorization_header(event))
    if token is None:
        logger.info("refused %s: missing or malformed Authorization header", route)
        return {"isAuthorized": False}
    try:
        hashes = default_verifier().hashes()
    except Exception as exc:
        logger.exception("cannot read the token hashes (%s); refusing %s", getattr(exc, "detail", exc), route)
        return {"isAuthorized": False}
    principal = principal_for(token, hashes)
    if principal is None:
        logger.info("refused %s: unknown token", route)
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"principal": principal.id}}
