"""Erasure of devices and owners, and devices' consent (issue 18, docs/lifecycle.md):
``plan`` (pure), ``run`` (over HTTP), ``routes`` (``/erasure`` on :8080), ``cli``
(``waziup erase``, ``waziup consent``)."""
