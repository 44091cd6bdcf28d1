"""The audit trail (issue 18): an append-only, hash-chained log of security-relevant events.

``record.py`` is the pure part (records, the chain, verification), ``store.py`` the SQLite
store, ``postgres.py`` the same on PostgreSQL, ``log.py`` the object services call,
``cli.py`` ``waziup audit`` and ``routes.py`` the admin API. docs/audit.md explains the design and its limits.
"""
