"""Malformed Lambda events get a clean 400 from the real function handlers, never a crash.

A direct invocation or a misconfigured integration can send events API Gateway never
would; Mangum raises on many of them (binascii.Error, AttributeError, KeyError, "unable to
infer a handler", int() on a Host's port). `prediction_service.awslambda.event_guard` answers them
with 400 in the one error body before Mangum reads them, and keeps well-formed events of
payload 2.0 and 1.0 (REST API and HTTP API) working.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from generate_events import EVENT_TOKEN
from mangum.handlers.utils import get_server_and_port
from prediction_service.awslambda.event_guard import refuse_malformed_events
from support import ROOT, lambda_context, load_event, load_function, shipped_model_names

Mutation = Callable[[dict[str, Any]], Any]


@pytest.fixture(scope="module")
def functions() -> dict[str, Any]:
    return {name: load_function(name) for name in ("models", "docs")}


def event_file(name: str) -> dict[str, Any]:
    return load_event(ROOT / "events" / f"{name}.json")


def rest_event(method: str = "GET", path: str = "/v1/models", body: str | None = None) -> dict[str, Any]:
    """A REST API (payload 1.0) proxy event, shaped like Mangum's own test events: `resource`,
    `httpMethod`, `multiValueHeaders`, `requestContext.identity`; no `version`."""
    headers = {"Accept": "application/json", "Host": "abc123.execute-api.us-east-1.amazonaws.com",
               "Authorization": f"Bearer {EVENT_TOKEN}", "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "123456",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "request-id-1",
            "requestTime": "09/Apr/2015:12:34:56 +0000",
            "path": f"/test{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "test",
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1428582896000,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def http_api_v1_event() -> dict[str, Any]:
    """An HTTP API event in payload format 1.0: the REST shape plus `version: "1.0"`."""
    return {"version": "1.0", **rest_event()}


def v1_post() -> dict[str, Any]:
    return rest_event("POST", "/v1/models/user_churn/predict", '{"ids": [1, 5]}')


def setting(path: str, value: Any) -> Mutation:
    """A mutation setting `a.b.c` to `value` (a missing key is created)."""
    *parents, last = path.split(".")

    def mutate(event: dict[str, Any]) -> None:
        for key in parents:
            event = event[key]
        event[last] = value

    return mutate


def removing(path: str) -> Mutation:
    *parents, last = path.split(".")

    def mutate(event: dict[str, Any]) -> None:
        for key in parents:
            event = event[key]
        del event[last]

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(event: dict[str, Any]) -> None:
        for m in mutations:
            m(event)

    return mutate


class replacing:  # noqa: N801 - reads like the other mutations
    """The whole event replaced by `value`."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, event: dict[str, Any]) -> Any:
        return copy.deepcopy(self.value)


LIST = "models_list"
POST = "models_predict_ids_labels"
NOT_BASE64 = "this is not base64!"

# (base event: a file in events/ or a builder, the mutation, words the 400's message must hold)
MALFORMED: dict[str, tuple[Any, Mutation, str]] = {
    # j: bodies Mangum cannot decode or encode
    "v2 base64 flag on a body that is not base64": (
        POST, both(setting("isBase64Encoded", True), setting("body", NOT_BASE64)), "not base64"),
    "v2 base64 flag on plain JSON text": (POST, setting("isBase64Encoded", True), "not base64"),
    "v1 base64 flag on a body that is not base64": (
        v1_post, both(setting("isBase64Encoded", True), setting("body", NOT_BASE64)), "not base64"),
    "isBase64Encoded not a boolean": (POST, setting("isBase64Encoded", "yes"), "isBase64Encoded"),
    "v2 body given as a JSON object": (POST, setting("body", {"ids": [1, 5]}), "body must be a string"),
    "v2 body given as an empty JSON object": (POST, setting("body", {}), "body must be a string"),
    "v2 body given as a list": (POST, setting("body", [1, 5]), "body must be a string"),
    "v1 body given as a JSON object": (v1_post, setting("body", {"ids": [1, 5]}), "body must be a string"),
    "body with a lone surrogate": (POST, setting("body", '{"ids": [1], "x": "\ud800"}'), "Unicode"),
    # j: headers
    "v2 header value a number": (LIST, setting("headers.accept", 1), "'accept' must be a string"),
    "v2 header value a list": (LIST, setting("headers.accept", ["application/json"]), "must be a string"),
    "v2 header value null": (LIST, setting("headers.authorization", None), "'authorization' must be a string"),
    "v2 header value an object": (LIST, setting("headers.accept", {"a": 1}), "must be a string"),
    "v2 header value a boolean": (LIST, setting("headers.accept", True), "must be a string"),
    "v2 headers a list": (LIST, setting("headers", [["accept", "application/json"]]), "headers must be an object"),
    "v1 header value a number": (rest_event, setting("headers.Accept", 1), "'accept' must be a string"),
    "v1 header value null": (rest_event, setting("headers.Accept", None), "must be a string"),
    "v1 multi-value header not a list": (
        rest_event, setting("multiValueHeaders.Accept", "application/json"), "list of strings"),
    "v1 multi-value header holding a number": (rest_event, setting("multiValueHeaders.Accept", [1]), "list of strings"),
    "v2 header value with a lone surrogate": (LIST, setting("headers.accept", "\udc80"), "not valid Unicode"),
    "v1 multi-value header with a lone surrogate": (
        rest_event, setting("multiValueHeaders.Accept", ["\udc80"]), "not valid Unicode"),
    "v1 multiValueHeaders a list": (rest_event, setting("multiValueHeaders", ["a"]), "multiValueHeaders"),
    # j: the event's frame
    "empty event": (LIST, replacing({}), "no requestContext"),
    "event a list": (LIST, replacing([]), "JSON object"),
    "event a string": (LIST, replacing("GET /v1/models"), "JSON object"),
    "event null": (LIST, replacing(None), "JSON object"),
    "v2 requestContext missing": (LIST, removing("requestContext"), "no requestContext"),
    "v2 requestContext empty": (LIST, setting("requestContext", {}), "requestContext must be a non-empty object"),
    "v2 requestContext null": (LIST, setting("requestContext", None), "requestContext must be a non-empty object"),
    "v2 requestContext without http": (LIST, removing("requestContext.http"), "requestContext.http"),
    "v2 method missing": (LIST, removing("requestContext.http.method"), "method is missing"),
    "v2 rawQueryString a number": (LIST, setting("rawQueryString", 1), "rawQueryString"),
    "v2 cookies not a list of strings": (LIST, setting("cookies", "a=b"), "cookies"),
    "unknown payload version": (LIST, setting("version", "3.0"), "version"),
    "v1 requestContext missing": (rest_event, removing("requestContext"), "no requestContext"),
    "v1 requestContext empty": (rest_event, setting("requestContext", {}), "non-empty object"),
    "v1 httpMethod missing": (rest_event, removing("httpMethod"), "httpMethod is missing"),
    "v1 path null": (rest_event, setting("path", None), "path must be a string"),
    "v1 identity a string": (rest_event, setting("requestContext.identity", "x"), "identity"),
    "v1 query parameters a list": (rest_event, setting("queryStringParameters", [1]), "queryStringParameters"),
    "neither version nor resource": (rest_event, removing("resource"), "neither version nor resource"),
    "an ALB event": (rest_event, setting("requestContext", {"elb": {"targetGroupArn": "arn"}}), "Load Balancer"),
    # m: Host and X-Forwarded-Port, which Mangum turns into the ASGI server (host, int(port))
    "host with a port that is not a number": (LIST, setting("headers.host", "a:b"), "port must be a number"),
    "host with an empty port": (LIST, setting("headers.host", "example.com:"), "port must be a number"),
    "host with a port above 65535": (LIST, setting("headers.host", "example.com:65536"), "0 to 65535"),
    "host with a signed port": (LIST, setting("headers.host", "example.com:+80"), "0 to 65535"),
    "host with an unbracketed IPv6 address": (LIST, setting("headers.host", "::1"), "more than one ':'"),
    "host with two colons": (LIST, setting("headers.host", "a:1:2"), "more than one ':'"),
    "host with an unclosed bracket": (LIST, setting("headers.host", "[::1"), "not a valid host"),
    "host with brackets around no IPv6 address": (LIST, setting("headers.host", "[abc]:80"), "IPv6 address"),
    "bracketed IPv6 host with a bad port": (LIST, setting("headers.host", "[::1]:http"), "port must be a number"),
    "host not ASCII": (LIST, setting("headers.host", "exämple.com"), "ASCII"),
    "x-forwarded-port not a number": (LIST, setting("headers.x-forwarded-port", "https"), "X-Forwarded-Port"),
    "v1 host with a port that is not a number": (rest_event, setting("multiValueHeaders.Host", ["a:b"]), "port"),
    "v1 x-forwarded-port not a number": (
        rest_event,
        both(setting("headers.X-Forwarded-Port", "x"), setting("multiValueHeaders.X-Forwarded-Port", ["x"])),
        "X-Forwarded-Port"),
}


def build(base: Any, mutation: Mutation) -> Any:
    event = base() if callable(base) else event_file(base)
    if isinstance(mutation, replacing):
        return mutation(event)
    mutation(event)
    return event


def assert_refused(result: dict[str, Any], words: str) -> None:
    assert result["statusCode"] == 400, result
    assert result["headers"] == {"content-type": "application/json"}
    assert result["isBase64Encoded"] is False
    assert "Traceback" not in result["body"]
    body = json.loads(result["body"])
    assert set(body) == {"status", "error_message"}
    assert body["status"] == "BadRequest"
    assert body["error_message"].startswith("malformed Lambda event: ")
    assert words in body["error_message"]


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_events_are_refused_with_400(case: str, s3: Any, functions: dict[str, Any]) -> None:
    base, mutation, words = MALFORMED[case]
    result = functions["models"].handler(build(base, mutation), lambda_context())
    assert_refused(result, words)


def test_every_function_behind_lambda_handler_refuses_them(s3: Any, functions: dict[str, Any]) -> None:
    every = {**functions, "batch": load_function("batch"), "runs": load_function("runs")}
    for function in every.values():
        assert_refused(function.handler({}, lambda_context()), "no requestContext")
        event = event_file("docs_openapi_document")
        event["headers"]["host"] = "a:b"
        assert_refused(function.handler(event, lambda_context()), "port")


def test_refusals_are_logged_without_header_values(s3: Any, functions: dict[str, Any],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    event = event_file(LIST)
    event["headers"]["x-secret"] = ["do-not-log-me"]
    assert_refused(functions["models"].handler(event, lambda_context()), "'x-secret'")
    assert "refused a malformed event" in caplog.text
    assert "do-not-log-me" not in caplog.text and EVENT_TOKEN not in caplog.text


# -- what is well formed stays served --------------------------------------------------------


def list_of_models(result: dict[str, Any]) -> set[str]:
    assert result["statusCode"] == 200, result
    return {m["name"] for m in json.loads(result["body"])["models"]}


MODELS = shipped_model_names()


def test_headers_null_is_read_as_no_headers(s3: Any, functions: dict[str, Any]) -> None:
    event = event_file("docs_openapi_document")  # a public route: no Authorization header needed
    event["headers"] = None
    result = functions["docs"].handler(event, lambda_context())
    assert result["statusCode"] == 200, result
    assert json.loads(result["body"])["openapi"].startswith("3.1")
    assert event["headers"] is None  # normalised on a copy: the caller's event is left alone


def test_null_optional_fields_are_read_as_absent(s3: Any, functions: dict[str, Any]) -> None:
    event = event_file(LIST)
    event.update(rawQueryString=None, cookies=None, isBase64Encoded=None, body=None)
    del event["requestContext"]["http"]["sourceIp"]
    assert list_of_models(functions["models"].handler(event, lambda_context())) == MODELS


def test_a_base64_body_is_still_read(s3: Any, functions: dict[str, Any]) -> None:
    import base64

    event = event_file(POST)
    event.update(isBase64Encoded=True, body=base64.b64encode(event["body"].encode()).decode())
    result = functions["models"].handler(event, lambda_context())
    assert result["statusCode"] == 200, result
    assert len(json.loads(result["body"])["prediction"]) == 3


@pytest.mark.parametrize("host", ["[::1]", "[::1]:3000", "[2001:db8::1]:8443", "[fe80::1%25eth0]:3000"])
def test_an_ipv6_host_is_served(host: str, s3: Any, functions: dict[str, Any]) -> None:
    event = event_file(LIST)
    event["headers"]["host"] = host
    assert list_of_models(functions["models"].handler(event, lambda_context())) == MODELS
    assert event["headers"]["host"] == host


@pytest.mark.parametrize(
    ("host", "rewritten", "server"),
    [
        ("[::1]", "0--1.ipv6-literal.net", ("0--1.ipv6-literal.net", 80)),
        ("[::1]:3000", "0--1.ipv6-literal.net:3000", ("0--1.ipv6-literal.net", 3000)),
        ("[2001:DB8:0:0::1]:8443", "2001-db8--1.ipv6-literal.net:8443", ("2001-db8--1.ipv6-literal.net", 8443)),
        ("[fe80::1%25eth0]:3000", "fe80--1seth0.ipv6-literal.net:3000", ("fe80--1seth0.ipv6-literal.net", 3000)),
        ("[::]:0", "0--0.ipv6-literal.net:0", ("0--0.ipv6-literal.net", 0)),
    ],
)
def test_an_ipv6_host_is_spelt_without_colons_for_mangum(host: str, rewritten: str, server: tuple[str, int]) -> None:
    seen: list[dict[str, Any]] = []
    guarded = refuse_malformed_events(lambda event, context: seen.append(event))
    event = event_file(LIST)
    event["headers"]["Host"] = event["headers"].pop("host")  # any spelling of the name
    event["headers"]["Host"] = host
    guarded(event, None)
    (passed,) = seen
    assert passed["headers"]["host"] == rewritten and "Host" not in passed["headers"]
    assert get_server_and_port(passed["headers"]) == server
    assert passed["requestContext"] is event["requestContext"]  # a shallow copy only


def test_a_well_formed_event_reaches_mangum_as_it_is() -> None:
    seen: list[dict[str, Any]] = []
    guarded = refuse_malformed_events(lambda event, context: seen.append(event))
    for name in (LIST, POST, "models_list_named_stage", "docs_openapi_document"):
        event = event_file(name)
        guarded(event, None)
        assert seen.pop() is event  # no copy on the warm path
    for builder in (rest_event, http_api_v1_event, v1_post):
        event = builder()
        guarded(event, None)
        assert seen.pop() is event


def test_rest_api_payload_1_event_lists_the_models(s3: Any, functions: dict[str, Any]) -> None:
    result = functions["models"].handler(rest_event(), lambda_context())
    assert "multiValueHeaders" in result  # Mangum's APIGateway (REST) handler answered
    assert list_of_models(result) == MODELS


def test_http_api_payload_1_event_lists_the_models(s3: Any, functions: dict[str, Any]) -> None:
    assert list_of_models(functions["models"].handler(http_api_v1_event(), lambda_context())) == MODELS


def test_rest_api_payload_1_post_predicts(s3: Any, functions: dict[str, Any]) -> None:
    result = functions["models"].handler(v1_post(), lambda_context())
    assert result["statusCode"] == 200, result
    assert len(json.loads(result["body"])["prediction"]) == 2


def test_rest_api_payload_1_with_null_fields_and_an_ipv6_host(s3: Any, functions: dict[str, Any]) -> None:
    event = rest_event()
    event["multiValueHeaders"]["Host"] = ["[::1]:3000"]
    event["requestContext"]["identity"] = None
    assert list_of_models(functions["models"].handler(event, lambda_context())) == MODELS
    event = rest_event()
    event["headers"] = None  # the token is still in multiValueHeaders
    assert list_of_models(functions["models"].handler(event, lambda_context())) == MODELS
