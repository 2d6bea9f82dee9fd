"""The API's one error vocabulary: each error knows its HTTP status and the body's `status` word.

The domain raises these; one exception handler per app (`app.py`), the batch loop and
the middleware turn them into the one error body, `error_body()`:

    {"status": "BadRequest" | "InternalError", "error_message": "...", "model_name": "..."}

`message` is safe to show to the caller. `detail` (where the bytes came from, a
parser's full text) is for the log only: it never reaches a response.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

BAD_REQUEST = "BadRequest"
INTERNAL_ERROR = "InternalError"


class PredictionError(Exception):
    """Base class: a failure of the server (500) unless a subclass says otherwise."""

    http_status: ClassVar[int] = 500
    status: ClassVar[str] = INTERNAL_ERROR

    def __init__(self, message: str, *, model_name: str | None = None, detail: str | None = None,
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.model_name = model_name
        self.detail = detail or message
        self.param = param  # the request field at fault (`input[3]`), where one is
        self.code = code  # a machine-readable reason (`context_length_exceeded`), where a protocol names one

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer must carry (WWW-Authenticate, Allow)."""
        return {}

    def for_model(self, name: str) -> PredictionError:
        """The same error, naming the model it happened to (kept if already named)."""
        if self.model_name is None:
            self.model_name = name
        return self


# -- the caller's mistakes (4xx) ----------------------------------------------------------


class BadInputError(PredictionError):
    """The request cannot be served as sent (shape, type, NaN, unknown ids...)."""

    http_status = 400
    status = BAD_REQUEST


class ModelNotFoundError(BadInputError):
    """The name is not in the manifest."""

    http_status = 404

    def __init__(self, name: str, listing: str = "GET /v1/models") -> None:
        super().__init__(f"model {name!r} is not in the manifest; {listing} lists the models", model_name=name,
                         code="model_not_found")
        self.name = name


class VersionNotFoundError(BadInputError):
    """The model exists, not in that version."""

    http_status = 404

    def __init__(self, name: str, version: str, known: list[str]) -> None:
        super().__init__(f"model {name!r} has no version {version!r}; its versions: {', '.join(known)}",
                         model_name=name, code="model_not_found")


class RouteNotFoundError(BadInputError):
    http_status = 404

    def __init__(self, method: str, path: str) -> None:
        hint = ""
        if path.rstrip("/").endswith(("/embeddings", "/models")) and not path.startswith("/openai/"):
            hint = " (OpenAI's embeddings API is under /openai/v1: a client's base_url is <API URL>/openai/v1)"
        super().__init__(f"no route {method} {_short(path, 200)}{hint}; GET /openapi.json lists the routes")


class MethodNotAllowedError(BadInputError):
    http_status = 405

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(f"{method} is not allowed here; use {' or '.join(allowed)}")
        self.allowed = allowed

    @property
    def headers(self) -> dict[str, str]:
        return {"allow": ", ".join(self.allowed)}


class UnauthorizedError(BadInputError):
    http_status = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"www-authenticate": "Bearer"}


class PayloadTooLargeError(BadInputError):
    http_status = 413


class UnsupportedMediaTypeError(BadInputError):
    http_status = 415


# -- the server's failures (5xx) ----------------------------------------------------------


class ManifestError(PredictionError):
    """The manifest is missing or invalid. The caller learns why in a few words; the parser's
    full text (which quotes the manifest) is the detail, for the log."""

    def __init__(self, reason: str, *, detail: str | None = None) -> None:
        super().__init__(f"the model manifest could not be loaded: {reason}", detail=detail or reason)


class ModelLoadError(PredictionError):
    """A file of the model could not be fetched, verified or parsed."""

    def __init__(self, name: str, cause: PredictionError) -> None:
        super().__init__(f"model {name!r} could not be loaded: {cause.message}", model_name=name, detail=cause.detail)


class StoreError(PredictionError):
    """S3 could not deliver or keep an object (unreachable, denied, missing).

    `message` says what went wrong without saying where (no bucket, key or endpoint);
    `detail` names the object, for the log."""


class ObjectNotFoundError(StoreError):
    """The object does not exist in the bucket."""


class CapacityError(PredictionError):
    """A file the cache has no room for (memory or /tmp), refused before it downloads (500).
    The registry names the model: "model 'x' could not be loaded: it needs 900 MB of /tmp, ..."."""


class RecordNotWrittenError(PredictionError):
    """The request was answered but its record could not be kept: the caller must know (500)."""

    def __init__(self, cause: StoreError) -> None:
        super().__init__(f"the run finished but its record could not be written: {cause.message}", detail=cause.detail)


class IntegrityError(PredictionError):
    """A downloaded file does not match the sha256 the manifest gives, or does not parse."""


class ModelOutputError(PredictionError):
    """The model answered something the manifest says it cannot (wrong shape)."""


class AuthConfigError(PredictionError):
    """No token hashes are configured, or they cannot be read: every request is refused."""

    def __init__(self, detail: str) -> None:
        super().__init__("authentication is not configured; the error is logged", detail=detail)


UNEXPECTED = "the server could not answer; the error is logged"

# How an app writes its error body: error_body (the API's own) or protocol_error_body (v2).
ErrorWriter = Callable[..., dict[str, Any]]


def error_body(error: PredictionError, request_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """The one error body. A server failure names the request id, so the caller can quote it
    and the operator find the logged detail."""
    message = error.message
    if error.http_status >= 500 and request_id:
        message = f"{message} (request id {request_id})"
    body: dict[str, Any] = {"status": error.status}
    if error.model_name is not None:
        body["model_name"] = error.model_name
    body["error_message"] = message
    body.update(extra)
    return body


def protocol_error_body(error: PredictionError, request_id: str | None = None, **_: Any) -> dict[str, Any]:
    """The Open Inference Protocol's error body, `{"error": "..."}`, for the v2 routes (same
    message as error_body, so a 5xx names its request id there too)."""
    return {"error": error_body(error, request_id)["error_message"]}


def error_param(errors: Sequence[Any]) -> str | None:
    """The field the first pydantic error is about, as OpenAI names it: `input`, `input[3]` (None
    when the body is not JSON: its `loc` is then a character position)."""
    if not errors or errors[0].get("type") == "json_invalid":
        return None
    name = ""
    for part in errors[0].get("loc", ()):
        if part in ("body", "path", "query", "header") and not name:  # where it was, not which field
            continue
        name += f"[{part}]" if isinstance(part, int) else (f".{_short(part)}" if name else _short(part))
    return name or None


def _short(part: object, most: int = 64) -> str:
    """A field name as a message repeats it: a caller's key of any length is cut to `most` characters."""
    text = str(part)
    return text if len(text) <= most else text[:most] + "..."


def describe_errors(errors: Sequence[Any]) -> str:
    """A short, human message from pydantic errors: `where: what` for the first few."""
    parts = []
    for error in errors[:3]:
        if error.get("type") == "json_invalid":
            parts.append("the request body is not valid JSON")
            continue
        loc = [_short(p) for p in error.get("loc", ()) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {error.get('msg', 'invalid')}")
    more = len(errors) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
