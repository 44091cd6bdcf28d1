"""Async tests of the audit log run on asyncio (the loop the services use)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
