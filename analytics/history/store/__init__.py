"""History stores, chosen by URL: ``sqlite:///file`` (default) or ``postgresql://...``."""

from __future__ import annotations

from .base import HistoryStore, StoreError


def open_store(url: str) -> HistoryStore:
    """The store a URL names (not opened yet); StoreError for a URL of no backend."""
    if url.startswith("sqlite:"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(f"no history store for {url.split(':', 1)[0]!r} URLs: sqlite:/// or postgresql://")


__all__ = ["HistoryStore", "StoreError", "open_store"]
