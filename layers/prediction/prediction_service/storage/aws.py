"""AWS clients for the library (S3 for models and records, SSM for token hashes): botocore
clients from one botocore session per process, whose data loader knows only those services.

Why not `boto3.client(...)`, on a 2-core machine (bench/cold_start.py):
- before botocore loads a service's model it lists every service it ships, to check that the
  name is one of them: about 440 directories and a `stat` of each of their files, about 40 ms of
  a cold start. This loader looks for the few services named here instead;
- boto3 adds its resource and transfer helpers to every S3 client it makes, importing its
  transfer module (10 ms) that only large models need (store.py imports it for them);
- one session for every client reads the files they all need (endpoints, partitions) once.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import botocore.session
from botocore.loaders import Loader

SERVICES = ("s3", "ssm")

_lock = threading.Lock()
_session: botocore.session.Session | None = None
_loader: KnownServicesLoader | None = None  # the data files it read (models, endpoints): no credentials


class KnownServicesLoader(Loader):
    """botocore's data loader, listing only the services this library uses (those its search
    paths hold a `type_name` file for): a client of any other service cannot be made from it."""

    def list_available_services(self, type_name: str) -> list[str]:
        found = []
        for service in SERVICES:
            for base in self.search_paths:
                directory = os.path.join(base, service)
                if os.path.isdir(directory) and any(
                    self.file_loader.exists(os.path.join(directory, version, type_name))
                    for version in os.listdir(directory)
                ):
                    found.append(service)
                    break
        return found


def _new_session() -> botocore.session.Session:
    """A session (its credentials resolved anew when a client is made) on this process's loader."""
    global _loader
    session = botocore.session.get_session()
    if _loader is None:
        data_path = session.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore's own loader reads it
        extra = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else None
        _loader = KnownServicesLoader(extra_search_paths=extra)
    session.register_component("data_loader", _loader)
    return session


def session() -> botocore.session.Session:
    """This process's session (made on first use; credentials and region from the environment)."""
    global _session
    with _lock:
        if _session is None:
            _session = _new_session()
        return _session


def client(service: str, **kwargs: Any) -> Any:
    """A botocore client of `service` (one of SERVICES) from this process's session."""
    return session().create_client(service, **kwargs)


def renew_session() -> None:
    """Forget the session, so the next client resolves credentials again (after a SnapStart restore,
    the snapshot's must not be reused). The loader stays: what it holds is botocore's data files,
    read from disk, the same in every environment, and reading them again took about 60 ms."""
    global _session
    with _lock:
        _session = None
