"""API Gateway (HTTP API) Lambda authorizer: `Authorization: Bearer <token>` against stored hashes.

Answers in the simple-response format (payload 2.0). API Gateway answers 401 itself
when the header is missing; a refused token gets 403 from API Gateway. Fails closed:
if the hashes cannot be read, every request is refused. The token is never logged.
"""

from __future__ import annotations

from typing import Any

from prediction_service.auth import bearer_token, default_verifier
from prediction_service.observability import logger


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    authorization = headers.get("authorization")
    route = event.get("routeKey", "?")
    try:
        principal = default_verifier().verify(authorization)
    except Exception:
        logger.exception("cannot read the token hashes; refusing %s", route)
        return {"isAuthorized": False}
    if principal is None:
        reason = "malformed header" if bearer_token(authorization) is None else "unknown token"
        logger.info("refused %s: %s", route, reason)
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"principal": principal.id}}
