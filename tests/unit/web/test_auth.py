"""Bearer tokens: hashes from the environment or SSM (moto), refusals, nothing secret logged."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from prediction_service.web.auth import AuthConfigError, TokenVerifier, bearer_token, default_verifier, parse_hashes
from support import ROOT, lambda_context, load_event, load_function

TOKEN = "a-valid-token-for-the-unit-tests"
OTHER = "another-valid-token-0123456789"


def hashed(*tokens: str) -> str:
    return ",".join(hashlib.sha256(t.encode()).hexdigest() for t in tokens)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer {TOKEN}", TOKEN),
        (f"Bearer  {TOKEN} ", TOKEN),
        (None, None),
        ("", None),
        ("Bearer", None),
        (f"Basic {TOKEN}", None),
        (f"Bearer {TOKEN} extra", None),
        ("Bearer short", None),
        ("Bearer has\"quote-in-the-middle-xx", None),
    ],
)
def test_bearer_token_accepts_only_well_formed_headers(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_verifier_accepts_any_configured_token_and_nothing_else() -> None:
    verifier = TokenVerifier(lambda: parse_hashes(hashed(TOKEN, OTHER)))
    assert verifier.verify(f"Bearer {TOKEN}") is not None
    assert verifier.verify(f"Bearer {OTHER}") is not None
    assert verifier.verify("Bearer not-a-configured-token-xyz") is None
    principal = verifier.verify(f"Bearer {TOKEN}")
    assert principal is not None and TOKEN not in principal.id


@pytest.mark.parametrize("raw", ["", "  ", "not-hex", "ab" * 31])
def test_malformed_hash_lists_are_a_configuration_error(raw: str) -> None:
    with pytest.raises(AuthConfigError):
        parse_hashes(raw)


def test_no_configuration_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKEN_HASHES")
    default_verifier.cache_clear()
    with pytest.raises(AuthConfigError):
        default_verifier()


@pytest.fixture
def ssm_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name="/test/token-hashes", Type="SecureString", Value=hashed(TOKEN))
        monkeypatch.setenv("API_TOKEN_HASHES_PARAMETER", "/test/token-hashes")
        default_verifier.cache_clear()
        yield ssm


def test_hashes_are_read_from_an_ssm_secure_string_and_cached(ssm_hashes: Any) -> None:
    verifier = default_verifier()
    assert verifier.verify(f"Bearer {TOKEN}") is not None
    assert verifier.verify(f"Bearer {OTHER}") is None
    # rotate in SSM: within max_age the cached hashes still answer (no SSM call per request)
    ssm_hashes.put_parameter(Name="/test/token-hashes", Type="SecureString", Value=hashed(OTHER), Overwrite=True)
    assert verifier.verify(f"Bearer {TOKEN}") is not None
    verifier.expire()  # what max_age expiry does
    assert verifier.verify(f"Bearer {TOKEN}") is None
    assert verifier.verify(f"Bearer {OTHER}") is not None


def test_authorizer_refuses_when_ssm_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():  # no parameter stored: reading it fails
        monkeypatch.setenv("API_TOKEN_HASHES_PARAMETER", "/test/missing")
        default_verifier.cache_clear()
        authorizer = load_function("authorizer")
        result = authorizer.handler(load_event(ROOT / "events/authorizer_valid_token.json"), lambda_context())
    assert result == {"isAuthorized": False}


def test_tokens_never_reach_the_logs(s3: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    authorizer, predict = load_function("authorizer"), load_function("models")
    for name in ("authorizer_valid_token", "authorizer_wrong_token", "authorizer_malformed_header"):
        authorizer.handler(load_event(ROOT / f"events/{name}.json"), lambda_context())
    for name in ("models_predict_wrong_token", "models_list_direct_with_token"):
        predict.handler(load_event(ROOT / f"events/{name}.json"), lambda_context())
    from generate_events import EVENT_TOKEN

    assert caplog.records, "the refusals should be logged"
    for secret in (EVENT_TOKEN, "wrong-token-0123456789abcdef"):
        assert secret not in caplog.text


@pytest.mark.parametrize("header", [123, ["Bearer a-valid-token-for-the-unit-tests"], {"Bearer": TOKEN}, True,
                                    f"Bearer {TOKEN}".encode()])
def test_bearer_token_reads_only_strings(header: object) -> None:
    assert bearer_token(header) is None
    assert TokenVerifier(lambda: parse_hashes(hashed(TOKEN))).verify(header) is None


def test_the_configuration_error_is_the_api_s_own() -> None:
    from prediction_service import errors

    assert AuthConfigError is errors.AuthConfigError
    with pytest.raises(errors.AuthConfigError) as raised:
        parse_hashes("not-hex")
    assert raised.value.http_status == 500 and "SHA-256" in raised.value.detail
    assert "SHA-256" not in raised.value.message  # the caller learns only that it is not configured


# -- the authorizer, given events API Gateway would not send -----------------------------------


def authorizer_event(**changes: Any) -> dict[str, Any]:
    event = load_event(ROOT / "events/authorizer_valid_token.json")
    event.update(changes)
    return event


def valid_header() -> str:
    return load_event(ROOT / "events/authorizer_valid_token.json")["headers"]["authorization"]


MALFORMED_SHAPES: dict[str, Any] = {
    "headers null": lambda: authorizer_event(headers=None),
    "headers a list": lambda: authorizer_event(headers=[["authorization", valid_header()]]),
    "headers a string": lambda: authorizer_event(headers=f"authorization: {valid_header()}"),
    "no headers": lambda: {k: v for k, v in authorizer_event().items() if k != "headers"},
    "header value a number": lambda: authorizer_event(headers={"authorization": 12345}),
    "header value a list": lambda: authorizer_event(headers={"authorization": [valid_header()]}),
    "header value null": lambda: authorizer_event(headers={"authorization": None}),
    "header value an object": lambda: authorizer_event(headers={"authorization": {"Bearer": "x"}}),
    "header under two spellings": lambda: authorizer_event(
        headers={"Authorization": valid_header(), "authorization": "Bearer another-token-0123456789"}),
    "header name not a string": lambda: authorizer_event(headers={1: valid_header()}),
    "identitySource null, headers null": lambda: authorizer_event(identitySource=None, headers=None),
    "identitySource a string, no header": lambda: authorizer_event(identitySource=valid_header(), headers={}),
    "identitySource of numbers, header a number": lambda: authorizer_event(identitySource=[1],
                                                                           headers={"authorization": 1}),
    "empty event": lambda: {},
    "event not an object": lambda: [valid_header()],
}


@pytest.mark.parametrize("shape", list(MALFORMED_SHAPES))
def test_authorizer_refuses_malformed_shapes_as_malformed(shape: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    authorizer = load_function("authorizer")
    assert authorizer.handler(MALFORMED_SHAPES[shape](), lambda_context()) == {"isAuthorized": False}
    assert "malformed" in caplog.text
    assert "token hashes" not in caplog.text  # a bad request, not a configuration failure
    assert "Traceback" not in caplog.text
    from generate_events import EVENT_TOKEN

    assert EVENT_TOKEN not in caplog.text


@pytest.mark.parametrize(
    "event",
    [
        authorizer_event(headers={"Authorization": valid_header()}),  # payload 1.0 / REST keeps the name's case
        authorizer_event(headers={"AUTHORIZATION": valid_header()}),
        authorizer_event(identitySource=None),
        authorizer_event(identitySource="odd"),
        authorizer_event(identitySource=[1, None]),
    ],
    ids=["Authorization", "AUTHORIZATION", "identitySource null", "identitySource a string", "identitySource odd"],
)
def test_authorizer_reads_a_well_formed_header_in_an_unusual_shape(event: dict[str, Any]) -> None:
    result = load_function("authorizer").handler(event, lambda_context())
    assert result["isAuthorized"] is True and result["context"]["principal"].startswith("token:")


def test_authorizer_logs_a_configuration_failure_as_one(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.delenv("API_TOKEN_HASHES")
    default_verifier.cache_clear()
    authorizer = load_function("authorizer")
    assert authorizer.handler(authorizer_event(), lambda_context()) == {"isAuthorized": False}
    assert "cannot read the token hashes" in caplog.text and "API_TOKEN_HASHES" in caplog.text  # the detail
    caplog.clear()
    # a malformed header is refused as such, before the hashes are even read
    assert authorizer.handler(authorizer_event(headers={"authorization": 1}), lambda_context()) == {
        "isAuthorized": False}
    assert "malformed" in caplog.text and "token hashes" not in caplog.text
    from generate_events import EVENT_TOKEN

    assert EVENT_TOKEN not in caplog.text
