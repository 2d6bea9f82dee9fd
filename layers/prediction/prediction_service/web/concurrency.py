"""Where a request's CPU work runs. In Lambda an execution environment takes one request at a
time, so the work runs right on the event loop (a thread hop would cost more than a small
prediction). Where one server is shared by many callers (`make run`, which sets SHARED_SERVER=1),
it runs in a worker thread, so one long request never freezes the others."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool


@functools.cache
def shared_server() -> bool:
    return os.environ.get("SHARED_SERVER", "").strip() in ("1", "true")


async def compute[T](work: Callable[..., T], *args: object, **kwargs: object) -> T:
    """`work(*args, **kwargs)`, off the event loop where the server is shared."""
    if shared_server():
        return await run_in_threadpool(work, *args, **kwargs)
    return work(*args, **kwargs)
