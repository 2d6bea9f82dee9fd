"""What one request may ask for, decided before any work is done, from what the request
declares (its body's size, its tensors' shapes, its number of texts) and from the platform's
documented limits and the function's memory:

- API Gateway and Lambda: a synchronous invocation's payload is at most 6 MB, request and
  answer alike (Lambda quotas); API Gateway waits at most 29 s for the function.
- The function's memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, which Lambda sets; the template's
  MemorySize under `make run`): a request may use a quarter of it for its tensors, at most
  256 MB, so that it never adds more than that over the warm process.

Everything above a limit is refused with 413 (too much) or 400 (malformed), naming the limit.
"""

from __future__ import annotations

import os

MB = 1024 * 1024
# Lambda's limit on a synchronous invocation's payload, request and answer alike.
LAMBDA_PAYLOAD_BYTES = 6 * MB
# The JSON routes' bodies (the v2 routes take up to LAMBDA_PAYLOAD_BYTES); a compressed body
# may unpack to LAMBDA_PAYLOAD_BYTES at most.
MAX_BODY_BYTES = 1 * MB
# An answer: the payload limit less the response's envelope; a binary answer travels
# base64-encoded, so it may hold three quarters of that.
MAX_JSON_ANSWER_BYTES = LAMBDA_PAYLOAD_BYTES - 4096
MAX_BINARY_ANSWER_BYTES = MAX_JSON_ANSWER_BYTES * 3 // 4
# One dimension of a tensor's shape.
MAX_DIMENSION = 2**31
# Texts in one request (a batch's items together), each of at most MAX_TEXT_CHARACTERS.
MAX_TEXTS = 64
MAX_TEXT_CHARACTERS = 10_000
# Word pieces a text model runs at once: a request's texts run in sub-batches of at most this
# many (padded) tokens, so that attention's memory stays small whatever the request.
TEXT_BATCH_TOKENS = 2048

DEFAULT_MEMORY_MB = 1024  # the template's MemorySize
# What one value of a tensor may cost while it is decoded from JSON: a Python float in a list
# (about 32 bytes), numpy's copy and the model's own (8 each), with room to spare.
BYTES_PER_VALUE = 64


def function_memory_mb() -> int:
    """The function's memory, as Lambda sets it (the template's default elsewhere)."""
    raw = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() else DEFAULT_MEMORY_MB


def request_memory_bytes(memory_mb: int | None = None) -> int:
    """The memory one request's tensors may take: a quarter of the function's, at most 256 MB."""
    return min(256 * MB, (memory_mb or function_memory_mb()) * MB // 4)


def max_values(memory_mb: int | None = None) -> int:
    """The values (tensor elements) one request may carry in all."""
    return request_memory_bytes(memory_mb) // BYTES_PER_VALUE
