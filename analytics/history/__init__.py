"""The history service: QuantumLeap 1.0-compatible time series of NGSI-v2 notifications.

Pure modules (no I/O; hypothesis-tested):

* ``instants``: ISO 8601 in and out, milliseconds, UTC calendar periods;
* ``values``: an attribute value's effective NGSI type, its casting, storage and decoding;
* ``entity``: a notified entity's attributes, normalized or keyValues;
* ``timeindex``: QuantumLeap's time index policy;
* ``notification``: ``POST /v2/notify`` bodies and headers into a ``model.Batch``;
* ``params``: query parameters into a ``params.Query``;
* ``render`` and ``csvout``: answers as JSON (QuantumLeap's shapes) and CSV;
* ``retention``: which raw values and hourly roll-ups a retention policy removes (the
  pass itself, which also rolls closed days up, drives the store).

With I/O:

* ``store``: the database, one interface (``store/base.py``), SQLite (``store/sqlite.py``,
  default) and PostgreSQL (``store/postgres.py``), chosen by URL;
* ``engine``: queries on a store (merging series, aggregates from roll-ups, geo filters);
* ``routes``, ``seam``, ``app``, ``server``, ``config``: the HTTP service (:8668).

docs/history.md describes the whole, its schema and the choices made where QuantumLeap's
releases differ.
"""
