"""Refuse malformed Lambda events with 400 before Mangum reads them.

API Gateway always sends well-formed proxy events, but a direct invocation or a
misconfigured integration can send anything, and Mangum (0.22) raises on much of it:
a body that is not base64 under `isBase64Encoded`, `headers: null`, a header value that
is not a string, no `requestContext`, a `body` given as a JSON object, a `Host` whose
port is not a number (`mangum.handlers.utils.get_server_and_port` splits the host on ":"
and calls `int()` on the rest). An exception there escapes the handler: the caller gets
Lambda's error payload with a stack trace instead of an HTTP answer.

`refuse_malformed_events` checks what Mangum reads, and answers what it cannot read with
an API Gateway proxy response carrying the one error body (`errors.error_body`):

    {"statusCode": 400, "headers": {"content-type": "application/json"},
     "body": "{\"status\": \"BadRequest\", \"error_message\": \"...\"}", "isBase64Encoded": false}

It accepts API Gateway proxy events only: HTTP API payload 2.0, and payload 1.0 (HTTP API
`version: "1.0"`, or a REST API event with `resource` and `httpMethod`). What can be read
without changing its meaning is normalised on a shallow copy of the event: `headers: null`
(and the other optional fields given as null) becomes absent or empty, and a Host that is
an IPv6 literal (`[::1]:3000`) is rewritten to a name without colons (see `_ipv6_host`).
The warm path costs a few dict lookups and one pass over the headers; a base64 body is
decoded once more, to check it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import re
from typing import Any

from prediction_service.errors import BadInputError, ErrorWriter, error_body
from prediction_service.observability import Handler

logger = logging.getLogger(__name__)

_PORT = re.compile(r"[0-9]{1,5}")
_IPV6_HOST = re.compile(r"\[([^\[\]]*)\](?::(.*))?")
# Colon-free spelling of an IPv6 address (the ipv6-literal.net convention): ":" -> "-", "%" -> "s".
IPV6_LITERAL_DOMAIN = "ipv6-literal.net"


class MalformedEvent(Exception):
    """What is wrong with the event, in words safe to answer (no header values, no body)."""


def refuse_malformed_events(handler: Handler, body: ErrorWriter = error_body) -> Handler:
    """`handler` (Mangum) called only with events it can read; 400 for the others, in the
    app's error body (`body`)."""

    def guarded(event: Any, context: Any) -> Any:
        try:
            event = _checked(event)
        except MalformedEvent as exc:
            logger.warning("refused a malformed event: %s", exc)
            return refusal(str(exc), body)
        return handler(event, context)

    return guarded


def refusal(reason: str, body: ErrorWriter = error_body) -> dict[str, Any]:
    """The API Gateway proxy response refusing an event (both payload versions read it)."""
    content = body(BadInputError(f"malformed Lambda event: {reason}"))
    return {
        "statusCode": 400,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(content),
        "isBase64Encoded": False,
    }


def _checked(event: Any) -> dict[str, Any]:
    """The event, possibly normalised on a shallow copy; MalformedEvent if Mangum could not read it."""
    if not isinstance(event, dict):
        raise MalformedEvent(f"the event must be a JSON object, not {_kind(event)}")
    if "requestContext" not in event:
        raise MalformedEvent("not an API Gateway proxy event (no requestContext)")
    context = event["requestContext"]
    if not isinstance(context, dict) or not context:
        raise MalformedEvent("requestContext must be a non-empty object")
    if "elb" in context:
        raise MalformedEvent("an Application Load Balancer event; this function serves API Gateway")
    # Mangum's order: a `version` makes it an HTTP API event (2.0, or 1.0 read like REST), else `resource`.
    if "version" in event:
        version = event["version"]
        if version == "2.0":
            return _checked_v2(event, context)
        if version != "1.0":
            raise MalformedEvent("version must be \"2.0\" or \"1.0\" (API Gateway payload format)")
        return _checked_v1(event, context)
    if "resource" in event:
        return _checked_v1(event, context)
    raise MalformedEvent("not an API Gateway proxy event (neither version nor resource)")


def _checked_v2(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    http = context.get("http")
    if not isinstance(http, dict):
        raise MalformedEvent("requestContext.http must be an object (payload 2.0)")
    _require_string(http, "method", "requestContext.http.method")
    _require_string(http, "path", "requestContext.http.path")
    changes: dict[str, Any] = {}
    if "sourceIp" not in http:  # Mangum indexes it; an unknown client is what its absence means
        changes["requestContext"] = {**context, "http": {**http, "sourceIp": None}}
    if "rawQueryString" in event and not isinstance(event["rawQueryString"], str):
        if event["rawQueryString"] is not None:
            raise MalformedEvent("rawQueryString must be a string")
        changes["rawQueryString"] = ""
    cookies = event.get("cookies")
    if cookies and not (isinstance(cookies, list) and all(isinstance(c, str) for c in cookies)):
        raise MalformedEvent("cookies must be a list of strings")
    _check_body(event)
    headers = event.get("headers")
    host = _host(_lowered(headers, "headers"), headers or {})
    if host is not None:
        changes["headers"] = host
    elif event.get("headers", {}) is None:
        changes["headers"] = {}
    return {**event, **changes} if changes else event


def _checked_v1(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _require_string(event, "httpMethod", "httpMethod")
    _require_string(event, "path", "path")
    identity = context.get("identity")
    if identity is not None and not isinstance(identity, dict):
        raise MalformedEvent("requestContext.identity must be an object")
    for name in ("queryStringParameters", "multiValueQueryStringParameters"):
        if event.get(name) is not None and not isinstance(event[name], dict):
            raise MalformedEvent(f"{name} must be an object")
    _check_body(event)
    headers = event.get("headers") or {}
    merged = _lowered(headers, "headers")
    multi = event.get("multiValueHeaders")
    if multi:
        if not isinstance(multi, dict):
            raise MalformedEvent("multiValueHeaders must be an object")
        for name, values in multi.items():
            if not isinstance(name, str):
                raise MalformedEvent("header names must be strings")
            if not isinstance(values, list):
                raise MalformedEvent(f"multiValueHeaders {name.lower()!r} must be a list of strings")
            for value in values:
                _check_header_value(name, value, "a list of strings")
    # Mangum reads `headers`, then lets `multiValueHeaders` (joined with ", ") override them.
    if multi:
        merged.update((k.lower(), ", ".join(v)) for k, v in multi.items())
    changes: dict[str, Any] = {}
    if event.get("headers", {}) is None:
        changes["headers"] = {}
    if identity is None and "identity" in context:
        changes["requestContext"] = {**context, "identity": {}}
    host = _host(merged, headers)
    if host is not None:
        changes["headers"] = host
        if multi:  # the rewritten Host goes in both places Mangum reads
            changes["multiValueHeaders"] = {k: v for k, v in multi.items() if k.lower() != "host"}
            changes["multiValueHeaders"]["host"] = [host["host"]]
    return {**event, **changes} if changes else event


def _check_body(event: dict[str, Any]) -> None:
    encoded = event.get("isBase64Encoded")
    if encoded is not None and not isinstance(encoded, bool):
        raise MalformedEvent("isBase64Encoded must be true or false")
    body = event.get("body")
    if body is None:
        return
    if not isinstance(body, str):
        raise MalformedEvent(f"body must be a string (JSON text), not {_kind(body)}")
    if encoded and body:
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedEvent("isBase64Encoded is true but the body is not base64") from None
    elif not body.isascii():
        try:
            body.encode()
        except UnicodeEncodeError:
            raise MalformedEvent("the body is not valid Unicode (lone surrogate)") from None


def _lowered(headers: Any, where: str) -> dict[str, str]:
    """The headers under lower-case names, as Mangum reads them (the last of two spellings wins);
    `null` reads as none. Names and values must be strings."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise MalformedEvent(f"{where} must be an object of strings")
    lowered = {}
    for name, value in headers.items():
        if not isinstance(name, str):
            raise MalformedEvent("header names must be strings")
        _check_header_value(name, value, "a string")
        lowered[name.lower()] = value
    return lowered


def _check_header_value(name: str, value: Any, expected: str) -> None:
    if not isinstance(value, str):
        raise MalformedEvent(f"header {name.lower()!r} must be {expected}, not {_kind(value)}")
    if not value.isascii():
        try:
            value.encode()  # what Mangum does with it
        except UnicodeEncodeError:
            raise MalformedEvent(f"header {name.lower()!r} is not valid Unicode") from None


def _host(merged: dict[str, str], headers: dict[str, str]) -> dict[str, str] | None:
    """Checks the Host and X-Forwarded-Port Mangum turns into the ASGI `server` (host, port).

    Mangum splits the Host on ":" and calls `int()` on the port; without a port in the Host
    it calls `int()` on X-Forwarded-Port. Returns `headers` with the Host rewritten when it
    is an IPv6 literal; None when nothing needs rewriting.
    """
    forwarded_port = merged.get("x-forwarded-port")
    if forwarded_port is not None:
        _check_port(forwarded_port, "X-Forwarded-Port")
    host = merged.get("host")
    if host is None:
        return None
    if not host.isascii():
        raise MalformedEvent("the Host header must be ASCII (international names in punycode)")
    if "[" in host or "]" in host:
        rewritten = _ipv6_host(host)
        new = {k: v for k, v in headers.items() if k.lower() != "host"}
        new["host"] = rewritten
        return new
    if ":" not in host:
        return None
    _, _, port = host.partition(":")
    if ":" in port:
        raise MalformedEvent("the Host header has more than one ':' (an IPv6 address must be in brackets)")
    _check_port(port, "the Host header's port")
    return None


def _ipv6_host(host: str) -> str:
    """`[2001:db8::1]:8443` -> `2001-db8--1.ipv6-literal.net:8443`.

    Mangum cannot parse a bracketed IPv6 host (it splits on every ":"), and the ASGI app
    builds its URLs from the Host header, so the header has to stay a valid host name:
    the address is spelt without colons the way Windows' ipv6-literal.net names spell it
    (":" -> "-", the zone's "%" -> "s"), and the port is kept.
    """
    match = _IPV6_HOST.fullmatch(host)
    if match is None:
        raise MalformedEvent("the Host header is not a valid host (bracketed IPv6 address, then ':port')")
    literal, port = match.groups()
    address, _, zone = literal.replace("%25", "%").partition("%")
    try:
        compressed = ipaddress.IPv6Address(address).compressed
    except ValueError:
        raise MalformedEvent("the Host header's brackets do not hold an IPv6 address") from None
    if zone and not re.fullmatch(r"[A-Za-z0-9._~-]+", zone):
        raise MalformedEvent("the Host header's IPv6 zone is not valid")
    label = compressed.replace(":", "-") + (f"s{zone}" if zone else "")
    label = ("0" + label if label.startswith("-") else label) + ("0" if label.endswith("-") else "")
    name = f"{label}.{IPV6_LITERAL_DOMAIN}"
    if port is None:
        return name
    _check_port(port, "the Host header's port")
    return f"{name}:{port}"


def _check_port(port: str, what: str) -> None:
    if not (_PORT.fullmatch(port) and int(port) <= 65535):
        raise MalformedEvent(f"{what} must be a number from 0 to 65535")


def _require_string(container: dict[str, Any], key: str, where: str) -> None:
    if not isinstance(container.get(key), str):
        raise MalformedEvent(f"{where} must be a string" if key in container else f"{where} is missing")


def _kind(value: Any) -> str:
    """A JSON name for the type of `value` (the value itself is never echoed)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__
