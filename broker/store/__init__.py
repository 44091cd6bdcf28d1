"""Entity storage behind one small interface, the backend chosen by URL scheme."""

from __future__ import annotations

from .base import AlreadyExists, DocKind, Selector, Store, StoreError, open_store

__all__ = ["AlreadyExists", "DocKind", "Selector", "Store", "StoreError", "open_store"]
