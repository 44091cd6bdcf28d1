"""``waziup users import FILE [-data DIR | -dbURI URL]``: WAZIUP's Keycloak users into the identity manager.

The file is a Keycloak realm export (or a partial ``<realm>-users-0.json``, or a bare
list of users); ``security.idm.keycloak_import`` reads it and writes the users, with their
Keycloak ids and password hashes, into the identity manager's store: the same one
``waziup idm`` opens with the same ``-data``/``-dbURI`` (and ``WAZIUP_DATA_DIR``,
``IDM_DB_URI``). Run it with the identity manager stopped or running: the store takes
concurrent writers. Existing ids, usernames and e-mails are skipped, so a second run
changes nothing.

The profile fields (names, phone, facebook, twitter, SMS credit) belong to the WAZIUP
API's store: they go to ``profiles`` when one is given (the API's ``Profiles``), else they
are only counted in the summary. Nothing printed holds a password or a hash.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable

from security.idm.keycloak_import import ExportError, ImportReport, Parsed, load_export, write_users
from security.idm.store import StoreError, open_store

from .accounts import MemoryProfiles, Profiles
from .config import Config
from .store import SqliteStore

USAGE = "waziup users import FILE [-data DIR | -dbURI URL]"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waziup users", usage=USAGE,
                                     description="Import the users of a Keycloak realm export into the identity manager.")
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("import", usage=USAGE, help="import a Keycloak realm export")
    load.add_argument("file", metavar="FILE", help="realm export (JSON)")
    where = load.add_mutually_exclusive_group()
    where.add_argument("-data", metavar="DIR", default=os.environ.get("WAZIUP_DATA_DIR") or "data",
                       help="the identity manager's data directory: <DIR>/idm.db (default $WAZIUP_DATA_DIR or data)")
    where.add_argument("-dbURI", metavar="URL", default=os.environ.get("IDM_DB_URI") or "",
                       help="the identity manager's store: sqlite:///file.db or postgresql://... (default $IDM_DB_URI)")
    return parser


async def save_profiles(path: str, profiles: dict[str, dict[str, object]]) -> None:
    """The imported users' WAZIUP fields into the API's store (``<data>/waziup-api.db``), in
    one session, merged with what it already holds for them."""
    if not profiles:
        return
    store = SqliteStore(path)
    await store.open()
    try:
        for user_id, fields in profiles.items():
            await store.put("profiles", user_id, {**(await store.get("profiles", user_id) or {}), **fields})
    finally:
        await store.close()


def store_url(data: str, db_uri: str) -> str:
    """The identity manager's store, as ``waziup idm`` chooses it (``ServiceConfig.store_url``)."""
    return db_uri or f"sqlite:///{os.path.abspath(os.path.join(data, 'idm.db'))}"


async def import_file(path: str, url: str, profiles: Profiles | None = None) -> tuple[Parsed, ImportReport]:
    """Parse ``path`` and write its users into the store at ``url`` (and their profiles
    into ``profiles`` when given)."""
    parsed = load_export(path, time.time())
    store = open_store(url)
    await store.open()
    try:
        report = await write_users(store, parsed.users)
    finally:
        await store.close()
    if profiles is not None:
        for user_id, fields in report.profiles.items():
            await profiles.put(user_id, fields)
    return parsed, report


def summary(parsed: Parsed, report: ImportReport) -> list[str]:
    lines = [*parsed.problems, *report.skipped]
    admins = sum(1 for item in report.imported if item.user.admin)
    no_password = sum(1 for item in report.imported if not item.user.password_hash)
    lines.append(f"imported {len(report.imported)} users ({admins} admins, {no_password} without a password), "
                 f"skipped {len(report.skipped)}, left out {parsed.left_out}")
    lines.append(f"profiles of {len(report.profiles)} users written to the API's store")
    return lines


def main(argv: list[str], *, profiles: Profiles | None = None, show: Callable[[str], object] = print) -> int:
    """``waziup users ...``: 0 when done, 1 on an error (said on stderr), 2 for bad usage."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    collected = MemoryProfiles() if profiles is None else None  # then written to the API's store
    try:
        parsed, report = asyncio.run(import_file(args.file, store_url(args.data, args.dbURI), profiles or collected))
        if collected is not None:
            asyncio.run(save_profiles(os.path.join(args.data, Config.STORE_FILE), collected.kept))
    except (OSError, ExportError, StoreError) as exc:
        print(f"waziup users import: {exc}", file=sys.stderr)
        return 1
    for line in summary(parsed, report):
        show(line)
    return 0
