"""The SQLite store's lookups by id use the unique (tenant, id, ...) index.

Without statistics SQLite may prefer the type or service-path index for ``id = ? AND type = ?
AND sp = ?`` and scan every entity of that type or path: a write then costs time in
proportion to the store's size (180 ms per PATCH at 110k entities, seen in the benchmark).
"""

from __future__ import annotations

import sqlite3

import pytest

from broker.store.base import Selector
from broker.store.sqlite import _SCHEMA, _where


@pytest.mark.parametrize(
    "selector",
    [
        Selector(ids=("E1",), types=("T",), service_paths=(("/", False),)),
        Selector(ids=("E1",), service_paths=(("/a", True),)),
        Selector(ids=("E1", "E2"), types=("T", "U"), service_paths=(("/a", False), ("/b", True))),
    ],
)
def test_id_lookups_use_the_unique_index(selector: Selector) -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(_SCHEMA)
    where, params = _where("tenant", selector)
    plan = db.execute(f"EXPLAIN QUERY PLAN SELECT doc FROM entities WHERE {where} ORDER BY seq LIMIT 2", params)
    details = " ".join(row[3] for row in plan)
    assert "sqlite_autoindex_entities_1 (tenant=? AND id=?)" in details, details
