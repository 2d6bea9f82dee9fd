"""Shared library of the prediction functions: manifest, S3 model cache, inference, API wiring."""

__version__ = "0.1.0"
