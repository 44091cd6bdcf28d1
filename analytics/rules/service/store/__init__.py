"""Stores of the rules service, chosen by URL: ``sqlite:///file`` (default),
``postgresql://...`` or ``memory://``; a backend's driver is imported only when chosen."""

from __future__ import annotations

from .base import FiringRecord, RulesStore, StoredRule, StoreError


def open_store(url: str) -> RulesStore:
    """The store a URL names (not opened yet); StoreError for a URL of no backend."""
    if url.startswith("sqlite:"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("memory:"):
        from .memory import MemoryStore

        return MemoryStore(url)
    raise StoreError(f"no rules store for {url.split(':', 1)[0]!r} URLs: sqlite:///, postgresql:// or memory://")


__all__ = ["FiringRecord", "RulesStore", "StoreError", "StoredRule", "open_store"]
