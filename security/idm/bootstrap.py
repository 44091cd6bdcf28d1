"""The first admin: made on the first start, never with a default password.

When the store has no admin, one is created with ``-adminId``/``-adminUsername``/
``-adminEmail`` and the password of ``WAZIUP_ADMIN_PASSWORD`` (or Keyrock's
``IDM_ADMIN_PASS``). Without one, a password is generated (144 random bits), shown once
through ``show`` (the console) and written to ``<data>/admin-password``, created with
mode 0600 (refused if the file already exists: a stale file must not be mistaken for
the new password). Logs never hold it. Later starts find the admin and do nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from .config import Config
from .credentials import hash_password, new_password
from .model import User
from .store import Conflict, IdmStore

log = logging.getLogger("waziup.idm")


def write_secret_file(path: str, text: str) -> None:
    """Create ``path`` readable by its owner only, holding ``text`` (FileExistsError if it exists)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")


async def ensure_admin(store: IdmStore, config: Config, now: float, show: Callable[[str], object]) -> User | None:
    """Create the first admin when there is none; the admin created, or None."""
    if await store.any_admin():
        return None
    password = config.admin_password
    generated = not password
    if generated:
        password = new_password()
        if os.path.exists(config.admin_password_file):
            os.remove(config.admin_password_file)  # from an earlier store that is gone: the new password replaces it
        write_secret_file(config.admin_password_file, password)
    admin = User(config.admin_id, config.admin_username, config.admin_email.lower(), hash_password(password),
                 enabled=True, admin=True, date_password=now, created_at=now)
    try:
        await store.create_user(admin)
    except Conflict:
        raise SystemExit(
            f"waziup idm: cannot create the first admin: id {config.admin_id!r}, username {config.admin_username!r} "
            f"or e-mail {config.admin_email!r} belongs to another user"
        ) from None
    if generated:
        show(f"waziup idm: first admin {config.admin_email} created; its generated password (shown once, also in "
             f"{config.admin_password_file}, mode 0600):\n{password}")
        log.warning("first admin %s created with a generated password, kept in %s", config.admin_email,
                    config.admin_password_file)
    else:
        log.info("first admin %s created with the password of the environment", config.admin_email)
    return admin
