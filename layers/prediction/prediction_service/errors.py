"""Errors the library raises; the API layer maps each to a status and an HTTP code."""

from __future__ import annotations


class PredictionError(Exception):
    """Base class: `message` is safe to show to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInputError(PredictionError):
    """The request cannot be served as sent (shape, type, NaN, unknown ids...)."""


class ModelNotFoundError(PredictionError):
    """The name is not in the manifest."""

    def __init__(self, name: str) -> None:
        super().__init__(f"model {name!r} is not in the manifest; GET /v1/models lists the models")
        self.name = name


class ManifestError(PredictionError):
    """The manifest is missing or invalid."""


class StoreError(PredictionError):
    """S3 could not deliver an object (unreachable, denied, missing)."""


class ObjectNotFoundError(StoreError):
    """The object does not exist in the bucket."""


class IntegrityError(PredictionError):
    """A downloaded file does not match the sha256 the manifest gives, or does not parse."""
