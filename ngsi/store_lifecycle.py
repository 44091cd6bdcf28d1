"""Opening and closing a store, as the broker's stores and the IoT agent's registry do alike.

Each keeps its documents behind a connection (or a pool) that exists only between
``open`` and ``close``; the SQLite ones keep a file whose folder may not exist yet; the
broker picks its backend by the scheme of a URL. These are the pieces they share, so
that a store states only what is its own: its error type, its schema, its tuning.
(Here rather than under ``broker/`` because the agent may not import the broker.)
"""

from __future__ import annotations

import abc
import importlib
import os
from collections.abc import Mapping
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qsl, urlencode

__all__ = ["ErrorMapping", "Openable", "WhileOpen", "backend_class", "keep_session", "open_pool", "postgres_dsn", "prepare_sqlite_path"]

Handle = TypeVar("Handle")


class Openable(abc.ABC):
    """A store to ``open`` before use and ``close`` after: ``async with store:`` does both."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, creating the schema when it is missing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Let the connection go."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class WhileOpen(Generic[Handle]):
    """Keeps a store's connection (or pool) in ``_handle``, set by ``open``, None before it
    and after ``close``.

    ``handle`` gives it, or raises ``closed_error()`` when the store is not open: a store
    binds it under the name its callers know (``db = WhileOpen.handle``). It is a plain
    property making the one check a hand-written one would, because every write reads it:
    sharing it costs the write path nothing."""

    _handle: Handle | None = None

    def closed_error(self) -> Exception:
        """What using the store outside ``open`` ... ``close`` raises; a store says it with
        its own error type."""
        return RuntimeError("the store is not open")

    @property
    def handle(self) -> Handle:
        handle = self._handle
        if handle is None:
            raise self.closed_error()
        return handle


class ErrorMapping:
    """``with`` it, a database driver's ``failures`` become the store's ``error``,
    described by ``message`` (``{exc}``: the driver's text, ``{name}``: its exception's
    class): the one exception type a store raises, whatever its backend. Stateless, so one
    instance per backend serves every call, nested or concurrent; a class rather than a
    ``@contextmanager`` generator, which would be built anew for every statement."""

    __slots__ = ("error", "failures", "message")

    def __init__(self, failures: tuple[type[BaseException], ...], error: type[Exception], message: str) -> None:
        self.failures = failures
        self.error = error
        self.message = message

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        if exc is not None and isinstance(exc, self.failures):
            raise self.error(self.message.format(exc=exc, name=type(exc).__name__)) from exc


def backend_class(url: str, backends: Mapping[str, str], error: type[Exception]) -> type[Any]:
    """The class that ``backends`` names (``"module:Class"``) for the scheme of ``url``
    (``postgresql+asyncpg`` counts as ``postgresql``), its module imported only now, so
    that a backend's driver is needed only where it is used; ``error`` for a scheme that
    is not in ``backends``."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    target = backends.get(scheme)
    if target is None:
        raise error(f"unsupported database URL scheme {scheme!r} (known: {', '.join(backends)})")
    module, _, name = target.partition(":")
    found: type[Any] = getattr(importlib.import_module(module), name)
    return found


def prepare_sqlite_path(path: str, *, mode: int | None = None) -> None:
    """Make the folder of the SQLite database ``path`` (nothing for ``:memory:``).

    With ``mode``, also create the database file with those permissions when it is
    missing: SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file,
    which it would otherwise create by the umask."""
    if path == ":memory:":
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if mode is not None and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, mode))


def postgres_dsn(url: str, *, pool_size: int, most: int, error: type[Exception]) -> tuple[str, int]:
    """asyncpg's DSN for a PostgreSQL store URL (``postgresql://user:password@host:port/db``,
    ``postgres://`` or ``postgresql+asyncpg://`` alike), and the size of the pool it asks
    for: ``?pool_size=N``, else ``pool_size``.

    asyncpg knows no ``pool_size`` parameter, so it is taken out; the others (``sslmode``...)
    are asyncpg's and stay. A URL without ``://``, or a ``pool_size`` that is not a whole
    number (ASCII digits: ``int`` refuses "²", which ``str.isdigit`` takes) from 1 to
    ``most``, raises ``error``."""
    _scheme, sep, rest = url.partition("://")
    if not sep:
        raise error(f"bad PostgreSQL URL {url!r}")
    base, _, query = rest.partition("?")
    size, kept = pool_size, []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "pool_size":
            if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= most:
                raise error(f"bad pool_size {value!r} in the PostgreSQL URL")
            size = int(value)
        else:
            kept.append((name, value))
    return "postgresql://" + base + ("?" + urlencode(kept) if kept else ""), size


async def open_pool(dsn: str, pool_size: int, *, lock: int, schema: str, **options: Any) -> Any:
    """An asyncpg pool of one to ``pool_size`` connections to ``dsn`` (``options``:
    asyncpg's, ``server_settings``, ``reset``...), with the store's ``schema`` made: in one
    transaction holding the advisory lock ``lock``, so that two processes starting at once
    do not both create it. A pool whose schema could not be made is let go before the error
    goes on."""
    import asyncpg  # here, so that only a PostgreSQL store needs the driver

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size, **options)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
            await conn.execute(schema)
    except BaseException:
        pool.terminate()
        raise
    return pool


async def keep_session(conn: Any) -> None:
    """The ``reset`` of an asyncpg pool whose users change no session state: nothing to send.

    asyncpg's default runs ``RESET ALL; UNLISTEN *; ...`` on every release, a second round
    trip for each query made through the pool. The PostgreSQL stores take their settings
    with the connection, hold advisory locks per transaction only and LISTEN on connections
    of their own; asyncpg still rolls back a transaction left open before calling this."""
