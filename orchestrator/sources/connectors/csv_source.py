"""A CSV table, from an HTTP(S) URL or a file: each row is a record (a dict by header).

Files are read only from the service's sources directory (``Context.files``,
``<data>/sources``): a path that leads outside it (``..``, a symbolic link, an absolute
path elsewhere) is refused, so a source can't be used to read the host's other files.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..definition import Definition
from .base import Context, SourceError
from .fetch import MAX_BODY, get


async def pages(definition: Definition, context: Context) -> AsyncIterator[list[Any]]:
    """One page: every row of the table."""
    scheme = urlsplit(definition.url).scheme.lower()
    if scheme in ("http", "https"):
        body = await get(definition, context, definition.url, "text/csv")
    else:
        body = await asyncio.to_thread(_read_file, local_path(definition.url, context.files))
    yield parse_rows(body, definition.encoding, definition.delimiter)


def local_path(url: str, root: Path | None) -> Path:
    """The file a ``file:///...`` URL or a path names, inside ``root`` (relative paths
    are taken from there); SourceError for any other."""
    if root is None:
        raise SourceError("this service reads no CSV files (it has no sources directory)")
    text = unquote(urlsplit(url).path) if url.lower().startswith("file:") else url
    base = os.path.realpath(root)
    path = os.path.realpath(os.path.join(base, text))
    if os.path.commonpath([base, path]) != base:
        raise SourceError(f"{url}: files are read from {base} only")
    return Path(path)


def _read_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BODY + 1)
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > MAX_BODY:
        raise SourceError(f"{path}: larger than {MAX_BODY} bytes")
    return data


def parse_rows(body: bytes, encoding: str, delimiter: str) -> list[dict[str, str]]:
    """The rows of a CSV text with a header line; cells beyond the header are ignored."""
    try:
        text = body.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as exc:
        raise SourceError(f"the CSV is not {encoding} text ({exc.reason} at byte {exc.start})") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        return [{k: v for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as exc:
        raise SourceError(f"the CSV can't be read: {exc}") from None
