"""The entry point of the Lambda image moto runs functions in (scripts/moto-lambda-image.sh).

moto's Lambda emulation starts a container per invocation in the docker-lambda convention: the
handler and the event as arguments, the function's code in /var/task and its layers in /opt,
the answer on the last line of stdout and a non-zero exit status for an error. This runs the
handler as Lambda's Python runtime would (layers' /opt/python, then the code, on the path) with
a context object of the same fields, and prints the answer as that last line; an error is
printed as Lambda reports one, `{"errorType", "errorMessage"}`, its traceback to stderr only.
"""

from __future__ import annotations

import importlib
import json
import os
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
        self._deadline = time.monotonic() + float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv: list[str]) -> int:
    handler_name, raw_event = argv[1], argv[2] if len(argv) > 2 else "{}"
    sys.path[:0] = ["/opt/python", os.environ.get("LAMBDA_TASK_ROOT", "/var/task")]
    try:
        module_name, _, function_name = handler_name.rpartition(".")
        handler: Any = getattr(importlib.import_module(module_name), function_name)
        result = handler(json.loads(raw_event), Context())
    except Exception as exc:
        traceback.print_exc()
        sys.stdout.flush()
        print("\n" + json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}), flush=True)
        return 1
    sys.stdout.flush()
    print("\n" + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
