"""Users of a Keycloak realm export, brought into the identity manager with their ids.

WAZIUP's accounts lived in a Keycloak realm; devices, gateways, projects and social
messages refer to users by Keycloak's ids and usernames, so an import keeps both (contract
§2: "migrated with their ids"). Two steps:

* :func:`parse_export` (pure): a realm export (``{"realm": ..., "users": [...]}``, also a
  partial ``<realm>-users-0.json``, or a bare list of users) becomes :class:`ImportedUser`
  records: the identity manager's :class:`~security.idm.model.User` and the profile fields
  it has no column for (``first_name``, ``last_name``, ``phone``, ``facebook``, ``twitter``,
  ``sms_credit``), which the WAZIUP API keeps in its own store;
* :func:`write_users`: those users created in a store, an existing id, username or e-mail
  skipped with a line saying so (a second run imports nothing twice).

Passwords: Keycloak's PBKDF2 hash is kept (``credentials.keycloak_hash``), in the old
export format (``hashedSaltedValue``, ``salt``, ``hashIterations``, ``algorithm``) or the
new one (``secretData``/``credentialData`` JSON strings); the identity manager checks it as
Keycloak did and replaces it with argon2id on the first successful login. A user without a
password credential (or with an algorithm not handled here, e.g. Keycloak 24's argon2)
gets none: they cannot log in until an admin sets one. Keycloak's service-account users
(``serviceAccountClientId``) are clients, not people, and are left out.

Nothing here logs or prints a hash or a password.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .credentials import keycloak_hash
from .model import User
from .store import Conflict, IdmStore

# An account needs an e-mail in the identity manager (unique, not null); a Keycloak user
# without one gets <username>@NO_EMAIL_DOMAIN, which the WAZIUP API does not show.
NO_EMAIL_DOMAIN = "no-email.invalid"
ADMIN_ROLE = "admin"
TEXT_ATTRIBUTES = ("phone", "facebook", "twitter")
# Keycloak's PBKDF2 algorithm names -> hashlib's digest names
ALGORITHMS = {"pbkdf2": "sha1", "pbkdf2-sha1": "sha1", "pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}


class ExportError(ValueError):
    """The file is not a Keycloak realm export (or a users list)."""


@dataclass(frozen=True)
class ImportedUser:
    user: User
    profile: dict[str, Any]  # the WAZIUP profile fields present (first_name, ..., sms_credit)


@dataclass
class Parsed:
    users: list[ImportedUser] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per user left out or field dropped
    left_out: int = 0  # users of the export not imported at all


@dataclass
class ImportReport:
    imported: list[ImportedUser] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per user not written, and why

    @property
    def profiles(self) -> dict[str, dict[str, Any]]:
        """The profile fields of the users written, by id: what the WAZIUP API's store takes."""
        return {item.user.id: item.profile for item in self.imported if item.profile}


# -- parsing --------------------------------------------------------------------------------


def export_users(data: Any) -> list[Any]:
    """The user list of a realm export, a partial users export, or a bare list."""
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping) and isinstance(data.get("users", []), list):
        return list(data.get("users", []))
    raise ExportError("not a Keycloak realm export: expected an object with a 'users' list, or a list of users")


def _first(value: Any) -> str | None:
    """A Keycloak attribute's value: a list of strings (the first one kept), or a string."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value != "" else None


def _email(raw: Any, username: str) -> str:
    """The e-mail kept (lowercase), or the placeholder when Keycloak had none usable."""
    if isinstance(raw, str):
        local, at, domain = raw.strip().partition("@")
        if at and local and "." in domain and not any(c.isspace() for c in raw.strip()):
            return raw.strip().lower()
    return f"{username}@{NO_EMAIL_DOMAIN}"


def _is_admin(raw: Mapping[str, Any]) -> bool:
    realm = raw.get("realmRoles") or []
    clients = raw.get("clientRoles") or {}
    client_roles = [role for roles in clients.values() if isinstance(roles, list) for role in roles] \
        if isinstance(clients, Mapping) else []
    return ADMIN_ROLE in realm or ADMIN_ROLE in client_roles


def _json_field(value: Any) -> dict[str, Any]:
    """``secretData``/``credentialData``: a JSON string in exports (an object accepted too)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value:
        loaded = json.loads(value)
        if isinstance(loaded, dict):
            return loaded
    return {}


def _b64(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError("missing")
    return base64.b64decode(value, validate=True)


def password_hash(credential: Mapping[str, Any]) -> str:
    """The stored hash of one Keycloak ``password`` credential, old or new format.
    ValueError when it cannot be kept (unknown algorithm, missing or malformed parts)."""
    if "secretData" in credential or "credentialData" in credential:
        secret, data = _json_field(credential.get("secretData")), _json_field(credential.get("credentialData"))
        value, salt = secret.get("value"), secret.get("salt")
        iterations, algorithm = data.get("hashIterations"), data.get("algorithm")
    else:
        value, salt = credential.get("hashedSaltedValue"), credential.get("salt")
        iterations, algorithm = credential.get("hashIterations"), credential.get("algorithm")
    digest_name = ALGORITHMS.get(str(algorithm or "pbkdf2-sha256").lower())
    if digest_name is None:
        raise ValueError(f"unsupported password algorithm {algorithm!r}")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations <= 0:
        raise ValueError("missing or bad hashIterations")
    try:
        return keycloak_hash(digest_name, iterations, _b64(salt), _b64(value))
    except (ValueError, binascii.Error):
        raise ValueError("missing or malformed hash or salt") from None


def _password(raw: Mapping[str, Any], username: str, problems: list[str]) -> str:
    """The user's kept hash, or "" (no password: cannot log in) with a problem line why."""
    credentials = [c for c in raw.get("credentials") or [] if isinstance(c, Mapping) and c.get("type") == "password"]
    if not credentials:
        problems.append(f"{username}: no password credential: imported without a password")
        return ""
    try:
        return password_hash(credentials[0])
    except (ValueError, json.JSONDecodeError) as exc:
        problems.append(f"{username}: password not imported ({exc}): imported without a password")
        return ""


def _profile(raw: Mapping[str, Any], username: str, problems: list[str]) -> dict[str, Any]:
    attributes = raw.get("attributes") or {}
    attributes = attributes if isinstance(attributes, Mapping) else {}
    profile: dict[str, Any] = {}
    for name, key in (("first_name", "firstName"), ("last_name", "lastName")):
        if isinstance(raw.get(key), str) and raw[key]:
            profile[name] = raw[key]
    for name in TEXT_ATTRIBUTES:
        value = _first(attributes.get(name))
        if value is not None:
            profile[name] = value
    credit = _first(attributes.get("sms_credit"))
    if credit is not None:
        try:
            profile["sms_credit"] = int(credit.strip())
        except ValueError:
            problems.append(f"{username}: sms_credit {credit[:20]!r} is not an integer: dropped")
    return profile


def _seconds(milliseconds: Any, default: float) -> float:
    return milliseconds / 1000.0 if isinstance(milliseconds, int | float) and not isinstance(milliseconds, bool) else default


def parse_user(raw: Any, now: float, problems: list[str]) -> ImportedUser | None:
    """One Keycloak user, or None (with a problem line) when it cannot or must not be imported."""
    if not isinstance(raw, Mapping):
        problems.append("an entry of 'users' is not an object: left out")
        return None
    user_id, username = raw.get("id"), raw.get("username")
    if not isinstance(user_id, str) or not user_id or not isinstance(username, str) or not username:
        problems.append(f"a user without id or username ({str(user_id)[:40]!r}): left out")
        return None
    if raw.get("serviceAccountClientId"):
        problems.append(f"{username}: a client's service account, not a person: left out")
        return None
    credentials = [c for c in raw.get("credentials") or [] if isinstance(c, Mapping) and c.get("type") == "password"]
    changed = _seconds(credentials[0].get("createdDate"), now) if credentials else now
    user = User(
        id=user_id, username=username, email=_email(raw.get("email"), username),
        password_hash=_password(raw, username, problems), enabled=raw.get("enabled", True) is not False,
        admin=_is_admin(raw), date_password=changed, created_at=_seconds(raw.get("createdTimestamp"), now),
    )
    return ImportedUser(user, _profile(raw, username, problems))


def parse_export(data: Any, now: float) -> Parsed:
    """Every user of an export (see the module text); ExportError when it is none."""
    parsed = Parsed()
    for raw in export_users(data):
        imported = parse_user(raw, now, parsed.problems)
        if imported is not None:
            parsed.users.append(imported)
        else:
            parsed.left_out += 1
    return parsed


def load_export(path: str | Path, now: float) -> Parsed:
    """:func:`parse_export` of a JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    return parse_export(data, now)


# -- writing --------------------------------------------------------------------------------


async def _taken(store: IdmStore, user: User) -> str | None:
    """Why ``user`` cannot be created as it is, or None."""
    if await store.get_user(user.id) is not None:
        return f"id {user.id} exists"
    found = await store.find_user(user.username)
    if found is not None:
        return f"username taken by user {found.id}"
    found = await store.find_user(user.email)
    if found is not None:
        return f"e-mail {user.email} taken by user {found.id}"
    return None


async def write_users(store: IdmStore, users: Iterable[ImportedUser]) -> ImportReport:
    """Create each user in the (open) store, skipping those whose id, username or e-mail
    exists: the report lists what was written and one line per user skipped."""
    report = ImportReport()
    for item in users:
        reason = await _taken(store, item.user)
        if reason is None:
            try:
                await store.create_user(item.user)
            except Conflict:
                reason = "id, username or e-mail taken"
        if reason is None:
            report.imported.append(item)
        else:
            report.skipped.append(f"{item.user.username} ({item.user.id}): skipped, {reason}")
    return report
