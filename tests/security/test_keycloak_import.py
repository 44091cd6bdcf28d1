"""Keycloak realm export -> identity manager (``security/idm/keycloak_import.py``), and the
login of an imported user with their Keycloak password through the real identity manager.

The fixture export is written here the way Keycloak writes one: the old credential format
(``hashedSaltedValue``, Keycloak < 7) and the new one (``secretData``/``credentialData`` JSON
strings), with real PBKDF2 hashes computed in the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.waziup_api import accounts
from orchestrator.waziup_api.users_cli import main as users_main
from security.idm.credentials import hash_password, keycloak_hash, needs_upgrade, verify_password
from security.idm.keycloak_import import (
    NO_EMAIL_DOMAIN,
    ExportError,
    load_export,
    parse_export,
    password_hash,
    write_users,
)
from security.idm.store import IdmStore, open_store
from tests.security.idm.conftest import Clock, basic, make_config, running

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0
SALT = b"0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def pbkdf2(digest: str, password: str, iterations: int = 1000, salt: bytes = SALT, size: int = 64) -> bytes:
    return hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations, size)


def old_credential(password: str, algorithm: str = "pbkdf2-sha256", digest: str = "sha256") -> dict[str, Any]:
    """Keycloak < 7's export of a password."""
    return {"type": "password", "hashedSaltedValue": b64(pbkdf2(digest, password)), "salt": b64(SALT),
            "hashIterations": 1000, "counter": 0, "algorithm": algorithm, "digits": 0, "period": 0,
            "createdDate": 1_600_000_000_000, "config": {}}


def new_credential(password: str, algorithm: str = "pbkdf2-sha512", digest: str = "sha512") -> dict[str, Any]:
    """Keycloak >= 7's export: JSON strings inside the credential."""
    return {"id": "c-1", "type": "password", "createdDate": 1_650_000_000_000,
            "secretData": json.dumps({"value": b64(pbkdf2(digest, password)), "salt": b64(SALT),
                                      "additionalParameters": {}}),
            "credentialData": json.dumps({"hashIterations": 1000, "algorithm": algorithm, "additionalParameters": {}})}


def realm() -> dict[str, Any]:
    return {"realm": "waziup", "enabled": True, "users": [
        {"id": "6f1d3c2e-0000-4000-8000-000000000001", "createdTimestamp": 1_500_000_000_000, "username": "cdupont",
         "enabled": True, "email": "CDupont@Waziup.org", "firstName": "Corentin", "lastName": "Dupont",
         "attributes": {"phone": ["+393806947495"], "facebook": ["cdupont.fb"], "twitter": ["cdupont"],
                        "sms_credit": ["100"]},
         "credentials": [old_credential("corentin-pass")], "realmRoles": ["offline_access", "uma_authorization"],
         "clientRoles": {"account": ["manage-account", "view-profile"]}},
        {"id": "6f1d3c2e-0000-4000-8000-000000000002", "username": "boss", "enabled": True, "email": "boss@waziup.org",
         "credentials": [new_credential("boss-pass")], "realmRoles": ["admin"]},
        {"id": "6f1d3c2e-0000-4000-8000-000000000003", "username": "oldtimer", "enabled": True,
         "credentials": [old_credential("sha1-pass", "pbkdf2", "sha1")], "clientRoles": {"api-server": ["admin"]},
         "attributes": {"sms_credit": ["lots"]}},
        {"id": "6f1d3c2e-0000-4000-8000-000000000004", "username": "nopass", "email": "nopass@waziup.org",
         "enabled": True, "credentials": []},
        {"id": "6f1d3c2e-0000-4000-8000-000000000005", "username": "gone", "email": "gone@waziup.org",
         "enabled": False, "credentials": [new_credential("gone-pass", "pbkdf2-sha256", "sha256")]},
        {"id": "6f1d3c2e-0000-4000-8000-000000000006", "username": "service-account-api-server", "enabled": True,
         "serviceAccountClientId": "api-server"},
        {"id": "6f1d3c2e-0000-4000-8000-000000000007", "username": "argon", "email": "argon@waziup.org",
         "credentials": [{"type": "password", "secretData": json.dumps({"value": "AAAA", "salt": "AAAA"}),
                          "credentialData": json.dumps({"hashIterations": 5, "algorithm": "argon2"})}]},
        "not a user",
    ]}


# -- parsing -----------------------------------------------------------------------------------


def test_parse_realm_export() -> None:
    parsed = parse_export(realm(), NOW)
    by_name = {item.user.username: item for item in parsed.users}
    assert set(by_name) == {"cdupont", "boss", "oldtimer", "nopass", "gone", "argon"}
    assert parsed.left_out == 2  # the service account and the non-object
    cdupont = by_name["cdupont"]
    assert cdupont.user.id == "6f1d3c2e-0000-4000-8000-000000000001"  # Keycloak's id kept
    assert cdupont.user.email == "cdupont@waziup.org" and not cdupont.user.admin and cdupont.user.enabled
    assert cdupont.user.created_at == 1_500_000_000.0 and cdupont.user.date_password == 1_600_000_000.0
    assert cdupont.profile == {"first_name": "Corentin", "last_name": "Dupont", "phone": "+393806947495",
                               "facebook": "cdupont.fb", "twitter": "cdupont", "sms_credit": 100}
    assert by_name["boss"].user.admin and by_name["oldtimer"].user.admin  # realm role, client role
    assert by_name["oldtimer"].user.email == f"oldtimer@{NO_EMAIL_DOMAIN}" and by_name["oldtimer"].profile == {}
    assert by_name["nopass"].user.password_hash == "" and by_name["argon"].user.password_hash == ""
    assert not by_name["gone"].user.enabled
    assert any("oldtimer: sms_credit" in line for line in parsed.problems)
    assert any(line.startswith("nopass: no password credential") for line in parsed.problems)
    assert any("argon" in line and "unsupported password algorithm" in line for line in parsed.problems)
    assert "pass" not in " ".join(line for line in parsed.problems if "sms_credit" in line)


def test_the_constant_the_api_hides_is_the_importers() -> None:
    assert accounts.NO_EMAIL_DOMAIN == NO_EMAIL_DOMAIN


def test_other_export_shapes(tmp_path: Path) -> None:
    users = realm()["users"][:2]
    assert len(parse_export(users, NOW).users) == 2  # a bare list
    partial = tmp_path / "waziup-users-0.json"
    partial.write_text(json.dumps({"realm": "waziup", "users": users}))
    assert [i.user.username for i in load_export(partial, NOW).users] == ["cdupont", "boss"]
    for bad in ({"users": "x"}, "text", 3):
        with pytest.raises(ExportError):
            parse_export(bad, NOW)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ExportError):
        load_export(tmp_path / "bad.json", NOW)


def test_credential_formats_verify() -> None:
    for credential, password in ((old_credential("p1"), "p1"), (new_credential("p2"), "p2"),
                                 (old_credential("p3", "pbkdf2", "sha1"), "p3"),
                                 (new_credential("p4", "pbkdf2-sha256", "sha256"), "p4")):
        kept = password_hash(credential)
        assert kept.startswith("$keycloak-pbkdf2-")
        assert verify_password(kept, password) and not verify_password(kept, password + "x")
        assert needs_upgrade(kept)
    with pytest.raises(ValueError):
        password_hash({"type": "password", "hashedSaltedValue": "!!", "salt": b64(SALT), "hashIterations": 1,
                       "algorithm": "pbkdf2-sha256"})
    with pytest.raises(ValueError):
        password_hash({"type": "password", "hashedSaltedValue": b64(b"x"), "salt": b64(SALT), "algorithm": "pbkdf2"})


def test_verify_password_refuses_malformed_keycloak_hashes() -> None:
    good = keycloak_hash("sha256", 1000, SALT, pbkdf2("sha256", "pw"))
    assert verify_password(good, "pw")
    for bad in ("$keycloak-pbkdf2-md5$1000$AAAA$AAAA", "$keycloak-pbkdf2-sha256$x$AAAA$AAAA",
                "$keycloak-pbkdf2-sha256$0$AAAA$AAAA", "$keycloak-pbkdf2-sha256$99999999999$AAAA$AAAA",
                "$keycloak-pbkdf2-sha256$1000$!!$AAAA", "$keycloak-pbkdf2-sha256$1000$AAAA$", "$keycloak-pbkdf2-",
                good + "$extra"):
        assert not verify_password(bad, "pw")
    assert not verify_password("", "")  # an account imported without a password
    argon = hash_password("pw")
    assert verify_password(argon, "pw") and not needs_upgrade(argon)
    with pytest.raises(ValueError):
        keycloak_hash("md5", 1, SALT, b"x")


# -- into a store, then logging in -------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path, anyio_backend: str) -> AsyncIterator[IdmStore]:
    the_store = open_store(f"sqlite:///{tmp_path}/idm.db")
    await the_store.open()
    yield the_store
    await the_store.close()


async def test_write_users_keeps_ids_and_skips_existing(store: IdmStore) -> None:
    parsed = parse_export(realm(), NOW)
    report = await write_users(store, parsed.users)
    assert len(report.imported) == 6 and report.skipped == []
    assert (await store.get_user("6f1d3c2e-0000-4000-8000-000000000001")).username == "cdupont"  # type: ignore[union-attr]
    assert report.profiles["6f1d3c2e-0000-4000-8000-000000000001"]["sms_credit"] == 100
    again = await write_users(store, parsed.users)
    assert again.imported == [] and len(again.skipped) == 6
    assert all("skipped, id" in line for line in again.skipped)
    # another id with a taken username, or a taken e-mail
    clash = parse_export([{"id": "x1", "username": "cdupont"}, {"id": "x2", "username": "new", "email": "boss@waziup.org"}],
                         NOW)
    third = await write_users(store, clash.users)
    assert [line.split(":")[0] for line in third.skipped] == ["cdupont (x1)", "new (x2)"]
    assert "username taken" in third.skipped[0] and "e-mail boss@waziup.org taken" in third.skipped[1]
    assert "$keycloak" not in " ".join(third.skipped + again.skipped)


async def test_the_upgrade_never_overwrites_a_newer_hash(store: IdmStore) -> None:
    await write_users(store, parse_export(realm(), NOW).users)
    boss = await store.get_user("6f1d3c2e-0000-4000-8000-000000000002")
    assert boss is not None
    assert not await store.upgrade_password_hash(boss.id, "some other hash", "new")
    assert await store.upgrade_password_hash(boss.id, boss.password_hash, "new")
    after = await store.get_user(boss.id)
    assert after == boss.replace(password_hash="new")  # nothing else written


async def test_imported_user_logs_in_with_the_keycloak_password(tmp_path: Path, anyio_backend: str) -> None:
    """The real identity manager: password grant by username and by e-mail, the hash
    replaced by argon2id on the first login, and the old password still right afterwards."""
    config = make_config(tmp_path, f"sqlite:///{tmp_path}/idm.db")
    async with running(config, Clock()) as idm:
        # imported into the running identity manager's store (before its first start, an
        # imported admin would stand for the first admin, which is then not created)
        await write_users(idm.app.state.service.store, parse_export(realm(), NOW).users)
        app = await idm.application()
        by_username = await idm.password_token(app, "cdupont", "corentin-pass")
        assert by_username.status_code == 200, by_username.text  # WAZIUP clients send usernames
        user = await idm.app.state.service.store.get_user("6f1d3c2e-0000-4000-8000-000000000001")
        assert user.password_hash.startswith("$argon2id$")  # upgraded on the first login
        assert (await idm.password_token(app, "CDupont@waziup.org", "corentin-pass")).status_code == 200  # e-mail
        assert (await idm.password_token(app, "cdupont", "wrong")).status_code == 400
        assert (await idm.password_token(app, "boss", "boss-pass")).status_code == 200  # new format, sha512
        assert (await idm.password_token(app, "oldtimer", "sha1-pass")).status_code == 200  # old format, sha1
        assert (await idm.password_token(app, "gone", "gone-pass")).status_code == 400  # disabled
        assert (await idm.password_token(app, "nopass", "")).status_code == 400
        assert (await idm.password_token(app, "nopass", "anything")).status_code == 400
        assert (await idm.login("boss", "boss-pass"))  # /v1/auth/tokens with the upgraded hash
        listed = (await idm.http.get("/v1/users", headers=idm.admin())).json()["users"]
        assert {u["username"]: u["admin"] for u in listed}["boss"] is True
        introspected = await idm.http.post("/oauth2/introspect", headers=basic(app["id"], app["secret"]),
                                           data={"token": by_username.json()["access_token"]})
        assert introspected.json()["sub"] == "6f1d3c2e-0000-4000-8000-000000000001"


# -- the command line ------------------------------------------------------------------------------


def test_cli_import(tmp_path: Path) -> None:
    export = tmp_path / "waziup-realm.json"
    export.write_text(json.dumps(realm()))
    shown: list[str] = []
    profiles = accounts.MemoryProfiles()
    assert users_main(["import", str(export), "-data", str(tmp_path)], profiles=profiles, show=shown.append) == 0
    assert "imported 6 users (2 admins, 2 without a password), skipped 0, left out 2" in shown
    assert profiles.kept["6f1d3c2e-0000-4000-8000-000000000001"]["first_name"] == "Corentin"
    shown.clear()
    assert users_main(["import", str(export), "-dbURI", f"sqlite:///{tmp_path}/idm.db"], show=shown.append) == 0
    assert "imported 0 users (0 admins, 0 without a password), skipped 6, left out 2" in shown
    assert any("profiles of 0 users written to the API's store" in line for line in shown)
    assert "pass" not in " ".join(line for line in shown if "$" in line)
    assert users_main(["import", str(tmp_path / "missing.json"), "-data", str(tmp_path)]) == 1
    assert users_main(["import"]) == 2
    assert users_main(["import", str(export), "-data", "a", "-dbURI", "b"]) == 2


def test_cli_import_writes_the_profiles_to_the_apis_store(tmp_path: Path) -> None:
    """Without a profiles sink given, ``waziup users import -data DIR`` keeps the WAZIUP fields
    in the API's own store, ``DIR/waziup-api.db``, where the API reads them."""
    import asyncio

    from orchestrator.waziup_api.store import SqliteStore

    export = tmp_path / "waziup-realm.json"
    export.write_text(json.dumps(realm()))
    assert users_main(["import", str(export), "-data", str(tmp_path)], show=lambda line: None) == 0

    async def profile() -> dict[str, Any] | None:
        store = SqliteStore(str(tmp_path / "waziup-api.db"))
        await store.open()
        try:
            return await store.get("profiles", "6f1d3c2e-0000-4000-8000-000000000001")
        finally:
            await store.close()

    kept = asyncio.run(profile())
    assert kept is not None and kept["first_name"] == "Corentin"
    assert ((tmp_path / "waziup-api.db").stat().st_mode & 0o777) == 0o600
