"""Provisioning of config groups and devices, compatible with the FIWARE IoT agents' north API.

``model`` (pure parse/validate/render), ``store`` (SQLite or memory registry), ``routes``
(Starlette routes of the north port).
"""

from __future__ import annotations
