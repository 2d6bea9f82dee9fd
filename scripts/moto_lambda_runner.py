"""The entry point of the Lambda image moto runs functions in (scripts/moto-lambda-image.sh).

moto's Lambda emulation starts a container per invocation in the docker-lambda convention: the
handler and the event as arguments, the function's code in /var/task and its layers in /opt,
the answer on the last line of stdout and a non-zero exit status for an error. This runs the
handler as Lambda's Python runtime would (layers' /opt/python, then the code, on the path) with
a context object of the same fields, and prints the answer as that last line; an error is
printed as Lambda reports one, `{"errorType", "errorMessage"}`, its traceback to stderr only.

The handler runs in a forked child that hands its answer back through a pipe, so that the ends
Lambda reports without the handler's help are reported here too, with Lambda's error types:
the child exiting or killed (`Runtime.ExitError`; `Runtime.OutOfMemory` when the container's
memory cgroup, which moto sizes from MemorySize, recorded an OOM kill), the function's Timeout
passing (`Sandbox.Timedout`; counted from the container's start, imports included), an answer
that is not JSON (`Runtime.MarshalError`). Without this such an invocation prints nothing on
stdout, and moto answers HTTP 500 (Step Functions then fails the execution with
`States.Runtime`, cause `KeyError('RequestId')`). Only the standard library is used here.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import sys
import time
import traceback
import uuid
from typing import Any


class Context:
    def __init__(self) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = str(uuid.uuid4())
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self.timeout_s = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"))
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def error(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message})


def invoke(handler_name: str, raw_event: str, context: Context) -> tuple[int, str]:
    """(exit status, answer line) of one call of the handler; tracebacks go to stderr."""
    sys.path[:0] = ["/opt/python", os.environ.get("LAMBDA_TASK_ROOT", "/var/task")]
    try:
        module_name, _, function_name = handler_name.rpartition(".")
        handler: Any = getattr(importlib.import_module(module_name), function_name)
        result = handler(json.loads(raw_event), context)
    except Exception as exc:
        traceback.print_exc()
        return 1, error(type(exc).__name__, str(exc))
    try:
        return 0, json.dumps(result)
    except (TypeError, ValueError) as exc:
        return 1, error("Runtime.MarshalError", f"Unable to marshal response: {exc}")


def oom_killed() -> bool:
    """Whether this container's memory cgroup (v2, else v1) recorded an OOM kill."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as counters:
                return any(line.split()[:1] == ["oom_kill"] and line.split()[1:] != ["0"] for line in counters)
        except OSError:
            continue
    return False


def child(handler_name: str, raw_event: str, context: Context, pipe: int) -> None:
    """Run the handler and write `<status><answer>\\n` to `pipe`; never returns."""
    status = 1
    try:
        status, line = invoke(handler_name, raw_event, context)
        with os.fdopen(pipe, "wb") as out:
            out.write(f"{status}{line}\n".encode())
    except SystemExit as exc:  # sys.exit in the handler: reported by the parent as Lambda does
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: S110 - nothing left to report it to
                pass
        os._exit(status)


def read_answer(pipe: int, deadline: float) -> bytes | None:
    """What the child wrote, up to its newline or the pipe's end; None if the deadline came first."""
    received = b""
    while b"\n" not in received:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([pipe], [], [], remaining)[0]:
            return None
        chunk = os.read(pipe, 65536)
        if not chunk:
            break
        received += chunk
    return received


def main(argv: list[str]) -> int:
    handler_name, raw_event = argv[1], argv[2] if len(argv) > 2 else "{}"
    context = Context()
    request = f"RequestId: {context.aws_request_id} Error:"
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        child(handler_name, raw_event, context, write_end)
    os.close(write_end)
    answer = read_answer(read_end, context._deadline)
    if answer is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status, line = 1, error("Sandbox.Timedout", f"{request} Task timed out after {context.timeout_s:.2f} seconds")
    else:
        _, wait_status = os.waitpid(pid, 0)
        if answer.endswith(b"\n"):
            status, line = int(answer[:1]), answer[1:].decode().strip()
        elif os.WIFSIGNALED(wait_status):
            reason = (signal.strsignal(os.WTERMSIG(wait_status)) or str(os.WTERMSIG(wait_status))).lower()
            kind = "Runtime.OutOfMemory" if oom_killed() else "Runtime.ExitError"
            status, line = 1, error(kind, f"{request} Runtime exited with error: signal: {reason}")
        else:
            code = os.waitstatus_to_exitcode(wait_status)
            status, line = 1, error("Runtime.ExitError", f"{request} Runtime exited with error: exit status {code}")
    print("\n" + line, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
