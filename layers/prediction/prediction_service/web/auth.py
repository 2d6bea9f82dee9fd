"""Bearer tokens: checked against SHA-256 hashes, compared in constant time, never logged.

The hashes come from an SSM SecureString parameter (deployed: its name in
`API_TOKEN_HASHES_PARAMETER`, read once and cached for `max_age` seconds) or from
`API_TOKEN_HASHES` (local runs and tests). Either holds hex digests separated by
commas, spaces or newlines. Only hashes are stored, so a leaked parameter does not
leak a usable token.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prediction_service.errors import AuthConfigError

_BEARER = re.compile(r"^(?i:bearer) +([A-Za-z0-9._~+/=-]{16,512})$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
TOKEN_HASHES_MAX_AGE = 300


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to, named by the first characters of its hash (safe to log)."""

    id: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: object) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when it is missing or
    malformed: anything but a string (a number, a list, null from an odd event) is malformed."""
    if not isinstance(authorization, str):
        return None
    match = _BEARER.match(authorization.strip())
    return match.group(1) if match else None


def parse_hashes(raw: str) -> tuple[str, ...]:
    hashes = tuple(h.lower() for h in re.split(r"[\s,]+", raw.strip()) if h)
    bad = [h for h in hashes if not _HEX64.match(h)]
    if bad or not hashes:
        raise AuthConfigError("token hashes must be one or more SHA-256 hex digests")
    return hashes


# Hashes of tokens made for SnapStart's warm-up (awslambda/warmup.py), accepted only while it runs.
_WARM_UP_HASHES: list[str] = []


@contextmanager
def warm_up_token() -> Iterator[str]:
    """A token accepted only inside the block: the snapshot's warm-up requests go through the
    routes as a caller's would. It is random, never written anywhere, and dead when the block ends."""
    token = secrets.token_urlsafe(32)
    _WARM_UP_HASHES.append(hash_token(token))
    try:
        yield token
    finally:
        _WARM_UP_HASHES.clear()


def principal_for(token: str, hashes: tuple[str, ...]) -> Principal | None:
    """The principal of `token` if its hash is one of `hashes`, else None."""
    presented = hash_token(token)
    matched = False
    for known in hashes:  # compare with every hash: timing says nothing about which
        matched |= hmac.compare_digest(presented, known)
    return Principal(id=f"token:{presented[:8]}") if matched else None


class TokenVerifier:
    def __init__(self, load_hashes: Callable[[], tuple[str, ...]], expire: Callable[[], None] | None = None) -> None:
        self._load_hashes = load_hashes
        self._expire = expire

    def expire(self) -> None:
        """Forget cached hashes, so the next check reads them again (what `max_age` does in time)."""
        if self._expire is not None:
            self._expire()

    def hashes(self) -> tuple[str, ...]:
        """The accepted token hashes. Raises when they cannot be read (AuthConfigError, SSM errors)."""
        return self._load_hashes()

    def verify(self, authorization: object) -> Principal | None:
        """The principal of a valid bearer header; None for a missing, malformed or unknown token.
        Raises only when the hashes cannot be read (see `hashes`)."""
        token = bearer_token(authorization)
        if token is None:
            return None
        hashes = self.hashes()
        return principal_for(token, (*hashes, *_WARM_UP_HASHES) if _WARM_UP_HASHES else hashes)


def _ssm_verifier(parameter: str) -> TokenVerifier:
    """Hashes read through Powertools' SSM provider, on a client of the library's AWS session
    (aws.py: cheaper to make, and sharing what the S3 client has loaded)."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from prediction_service.storage.aws import client

    provider = SSMProvider(boto3_client=client("ssm"))

    def load() -> tuple[str, ...]:
        return parse_hashes(str(provider.get(parameter, decrypt=True, max_age=TOKEN_HASHES_MAX_AGE)))

    return TokenVerifier(load, provider.clear_cache)


@functools.cache
def default_verifier() -> TokenVerifier:
    """The verifier of this execution environment, configured from the environment."""
    parameter = os.environ.get("API_TOKEN_HASHES_PARAMETER", "").strip()
    if parameter:
        return _ssm_verifier(parameter)
    local = os.environ.get("API_TOKEN_HASHES", "")
    if not local.strip():
        raise AuthConfigError("set API_TOKEN_HASHES_PARAMETER (SSM) or API_TOKEN_HASHES to the token hashes")
    hashes = parse_hashes(local)
    return TokenVerifier(lambda: hashes)
