"""A polled HTTP JSON API: one GET per page, the records selected by ``records``.

Paging: ``next`` follows the URL a JMESPath finds in each page (relative URLs resolved
against the page's own) until there is none; ``param`` counts pages in a query parameter
(with an optional page size) until a page brings no records, or fewer than the size.
Both stop at ``max_pages``: a server that always offers a next page must not hold a run
forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import jmespath
import orjson

from ..definition import Definition, NextLinkPaging, ParamPaging
from ..mapping import select_records
from .base import Context, SourceError
from .fetch import get


async def pages(definition: Definition, context: Context) -> AsyncIterator[list[Any]]:
    """The records of each page, in order."""
    records = jmespath.compile(definition.records) if definition.records else None
    paging = definition.paging
    if isinstance(paging, ParamPaging):
        previous: list[Any] | None = None
        for number in range(paging.start, paging.start + paging.max_pages):
            extra = {paging.param: str(number)}
            if paging.size_param:
                extra[paging.size_param] = str(paging.size)
            found = select_records(records, await _document(definition, context, with_query(definition.url, extra)))
            if not found or found == previous:  # an API that ignores the parameter gives its one page again
                return
            yield found
            if paging.size and len(found) < paging.size:
                return
            previous = found
        return
    url: str | None = definition.url
    seen: set[str] = set()
    limit = paging.max_pages if isinstance(paging, NextLinkPaging) else 1
    follow = jmespath.compile(paging.next) if isinstance(paging, NextLinkPaging) else None
    while url is not None and url not in seen and len(seen) < limit:
        seen.add(url)
        document = await _document(definition, context, url)
        yield select_records(records, document)
        url = _next_url(follow, document, url) if follow is not None else None


def _next_url(follow: Any, document: Any, current: str) -> str | None:
    found = follow.search(document)
    if not isinstance(found, str) or not found.strip():
        return None
    return urljoin(current, found.strip())


def with_query(url: str, extra: dict[str, str]) -> str:
    """``url`` with the parameters of ``extra`` set (replacing those of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in extra]
    return urlunsplit(parts._replace(query=urlencode(query + list(extra.items()))))


async def _document(definition: Definition, context: Context, url: str) -> Any:
    body = await get(definition, context, url, "application/json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"GET {url}: the answer is not JSON ({exc})") from None
