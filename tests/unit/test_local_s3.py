"""scripts/local_s3.py, the one fake S3: its server's own behaviour (the rest of the suite uses it)."""

from __future__ import annotations

import pytest
from local_s3 import MotoServer, create_bucket


def test_the_server_publishes_resets_and_refuses_a_port_already_taken() -> None:
    with MotoServer() as server:
        keys = create_bucket(server.client(), "probe-models")
        assert keys[-1] == "models/manifest.yaml"
        assert server.client("sts").get_caller_identity()["Account"]  # `sam local` asks moto's STS
        server.reset()
        assert server.client().list_buckets()["Buckets"] == []
        with pytest.raises(RuntimeError, match="is taken"):
            MotoServer(server.port)  # else the running server would answer for the new one
    assert server.process.poll() is not None
