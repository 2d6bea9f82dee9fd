"""Shared library of the prediction functions: manifest, S3 model cache, inference, API wiring."""

__version__ = "0.1.0"
TITLE = "ONNX prediction API"  # the API's name in its OpenAPI document and docs page
