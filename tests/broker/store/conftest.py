"""Store fixtures: the PostgreSQL ones (``pg_cluster``, ``pg_url``) live one level up,
in ``tests/broker/conftest.py``, shared with the worker and durability tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
