"""What every connector is handed (``Context``) and how it fails (``SourceError``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ngsi.client.http11 import HTTPClient
from ngsi.destinations import Gate


class SourceError(Exception):
    """A run that failed for a reason worth showing in the status (no traceback needed)."""


@dataclass(frozen=True)
class Context:
    """The shared means of every source: the gate of the destination policy, the HTTP
    client that applies it at each connection, the environment secrets are read from,
    and the one directory CSV files may be read from (None: no files)."""

    gate: Gate
    http: HTTPClient
    environ: Mapping[str, str]
    files: Path | None = None


def secret(environ: Mapping[str, str], name: str) -> str:
    """The value of the environment variable ``name``; a source whose secret is missing fails."""
    value = environ.get(name)
    if not value:
        raise SourceError(f"the environment variable {name} (a secret of this source) is not set")
    return value
