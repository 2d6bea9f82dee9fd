"""The base of every request and response body the protocols define."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    """Every body here: its validator is built on first use, not at import (a function uses a few
    of these models; building them all took 15-30 ms of every cold start)."""

    model_config = ConfigDict(defer_build=True)
