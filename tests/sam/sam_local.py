"""Fixtures for the `sam local` tests (imported by them; not a conftest so names stay unique): Docker and the Lambda image, sam build, moto on the bridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bulk_datasets import EVENT_BUCKET, put_event_data
from generate_events import EVENT_TOKEN_HASH, sam_command
from local_bulk import docker_bridge_address
from local_s3 import MotoServer, create_bucket
from support import ROOT, skip_loudly

BUCKET = "sam-local-models"


@dataclass(frozen=True)
class SamLocal:
    image: str
    env_vars: Path
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        return [
            sam_command(),
            *args,
            "--invoke-image",
            self.image,
            "--skip-pull-image",
            "--add-host",
            "host.docker.internal:host-gateway",
            "--env-vars",
            str(self.env_vars),
        ]


@pytest.fixture(scope="session")
def lambda_image() -> Iterator[str]:
    """Docker up and the local Lambda image built; a daemon the script started is stopped afterwards."""
    script = str(ROOT / "scripts" / "lambda-image.sh")
    result = subprocess.run([script, "ensure"], capture_output=True, text=True)
    if result.returncode == 3:
        skip_loudly(f"DOCKER CANNOT START ON THIS MACHINE; sam local tests skipped:\n{result.stderr[-2000:]}")
    assert result.returncode == 0, result.stderr[-4000:]
    yield result.stdout.strip().splitlines()[-1]
    subprocess.run([script, "stop"], check=False)


@pytest.fixture(scope="session")
def sam_env() -> dict[str, str]:
    """The SAM CLI's environment: python3.13 of the venv first (for sam build), fake AWS credentials."""
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        SAM_CLI_TELEMETRY="0",
        AWS_ACCESS_KEY_ID="sam-local",
        AWS_SECRET_ACCESS_KEY="sam-local",
        AWS_DEFAULT_REGION="us-east-1",
    )


@pytest.fixture(scope="session")
def sam_built(sam_env: dict[str, str]) -> None:
    result = subprocess.run([sam_command(), "build"], cwd=ROOT, env=sam_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="session")
def moto_on_bridge(lambda_image: str) -> Iterator[str]:
    """A moto server on the Docker bridge address (not 0.0.0.0) with models/ in S3; yields its host-side URL."""
    from local_api import text_models

    with MotoServer(host=docker_bridge_address()) as server:
        create_bucket(server.client(), BUCKET, text_models=text_models())
        put_event_data(server.client())  # what events/bulk_*.json read
        yield server.url


@pytest.fixture(scope="session")
def sam_local(
    lambda_image: str, sam_built: None, moto_on_bridge: str, sam_env: dict[str, str], tmp_path_factory: Any
) -> SamLocal:
    port = moto_on_bridge.rsplit(":", 1)[1]
    env_vars = tmp_path_factory.mktemp("sam") / "env.json"
    env_vars.write_text(
        json.dumps(
            {
                # for every function: locally the token hashes come from API_TOKEN_HASHES, not SSM
                "Parameters": {
                    "MODEL_BUCKET": BUCKET,
                    "S3_ENDPOINT_URL": f"http://host.docker.internal:{port}",
                    "API_TOKEN_HASHES_PARAMETER": "",
                    "API_TOKEN_HASHES": EVENT_TOKEN_HASH,
                    # the bulk functions: jobs read and write in the events' bucket
                    "BULK_INPUT_BUCKET": EVENT_BUCKET,
                    "BULK_OUTPUT_BUCKET": EVENT_BUCKET,
                },
            }
        )
    )
    # `sam local` asks STS for the account id before every invoke; moto answers at once,
    # where the real endpoint (unreachable here) would cost seconds of retries.
    return SamLocal(lambda_image, env_vars, dict(sam_env, AWS_ENDPOINT_URL_STS=moto_on_bridge))
