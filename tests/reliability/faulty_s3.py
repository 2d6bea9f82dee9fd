"""A real S3 endpoint with faults on demand: a small HTTP proxy on 127.0.0.1 in front of a moto
server (scripts/local_s3.py's, which the caller starts and stops).

The proxy forwards every request to moto unless a fault is set for keys containing
a given text: `delay` (seconds before forwarding), `deny` (403 AccessDenied),
`error` (500), `reset` (close without answering) or `corrupt` (flip the body's bytes).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local_s3 import MotoServer, free_port

DENIED = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
FAILED = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code><Message>boom</Message></Error>"


@dataclass
class Fault:
    kind: str
    match: str = ""
    seconds: float = 0.0


class FaultyS3:
    """The proxy at `url`; `moto_url` reaches moto directly (for setting up without faults)."""

    def __init__(self, moto: MotoServer) -> None:
        self.moto_url = moto.url
        self.fault: Fault | None = None
        self.requests: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                proxy.requests.append((self.command, self.path))
                fault = proxy.fault
                active = fault is not None and fault.match in self.path
                if active and fault.kind == "delay":
                    time.sleep(fault.seconds)
                if active and fault.kind in ("deny", "error"):
                    self._answer(403 if fault.kind == "deny" else 500, DENIED if fault.kind == "deny" else FAILED)
                    return
                if active and fault.kind == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection(moto.host, moto.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                if active and fault.kind == "corrupt" and data:
                    data = bytes(b ^ 0xFF for b in data)
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/xml")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
