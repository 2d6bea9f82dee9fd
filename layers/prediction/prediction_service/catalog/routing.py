"""Which version of a model answers a request: a version named outright, or one chosen by
weight from an alias of the manifest (`aliases: {name: {stable: {"1.0": 90, "1.1": 10}}}`).

A request that carries a routing key (the `X-Routing-Key` header, a classification's ids, a
run's `user_ids`) is placed by a hash of the key and the model's name, so one key always
lands on the same version while the weights stay the same, in every process; a request
without one is placed at random. Versions take the weights in the order the alias lists
them, so ramping the last one up (90/10 -> 50/50) moves keys only towards it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prediction_service.catalog.manifest import Manifest, ModelSpec

KEY_HASH_CHARS = 16  # of the key's sha256, in records and logs (never the key itself)


@dataclass(frozen=True)
class Route:
    """A request's way to one version: the version's spec, the alias that chose it (None when the
    version was named or is the model's only one) and the hash of the routing key, if any."""

    spec: ModelSpec
    alias: str | None = None
    key_hash: str | None = None
    key: str | None = field(default=None, repr=False)  # routes an ensemble's members alike; never logged
    manifest: Manifest | None = field(default=None, repr=False, compare=False)  # the one it was chosen from

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.spec.version

    def to(self, spec: ModelSpec) -> Route:
        """The same request's way to another version (its shadow), with the same key."""
        return Route(spec, None, self.key_hash, self.key, self.manifest)


def key_hash(key: str) -> str:
    """What records and logs keep of a routing key: enough to group by, not the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:KEY_HASH_CHARS]


def ids_key(ids: Sequence[int] | None) -> str | None:
    """The routing key of a request that names ids: one id routes as that user; several route
    together, keyed by all of them in order."""
    return ",".join(str(i) for i in ids) if ids else None


def point(name: str, key: str | None, draw: Callable[[], float] = random.random) -> float:
    """Where in [0, 100) a request falls: from the key's hash (the same in every process, unlike
    `hash()`), or at random without a key."""
    if key is None:
        return draw() * 100
    digest = hashlib.sha256(f"{name}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def pick(weights: dict[str, int], at: float) -> str:
    """The version whose share of [0, 100), in listed order, holds `at` (weights add up to 100)."""
    edge = 0
    chosen = None
    for version, weight in weights.items():
        if weight <= 0:
            continue
        chosen = version
        edge += weight
        if at < edge:
            return version
    assert chosen is not None, "an alias gives some version a weight"
    return chosen


def route(
    manifest: Manifest,
    name: str,
    version: str | None = None,
    key: str | None = None,
    draw: Callable[[], float] = random.random,
) -> Route:
    """The version that answers: `version` if it names one; the alias it names; else the bare name's
    alias (`stable`) or the model's only serving version. Raises ModelNotFoundError for an unknown
    name and VersionNotFoundError (404, naming the known versions and aliases) for an unknown version."""
    hashed = key_hash(key) if key is not None else None
    alias = manifest.alias(name, version)
    if alias is None:
        return Route(manifest.get(name, version), None, hashed, key, manifest)
    chosen = pick(manifest.aliases[name][alias], point(name, key, draw))
    return Route(manifest.get(name, chosen), alias, hashed, key, manifest)
