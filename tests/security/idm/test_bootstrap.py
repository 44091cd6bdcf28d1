"""First start: the admin from the environment, or a generated password printed once and
kept in a 0600 file; no default password anywhere. Also the command line and a real
process (``python -m security.idm``)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from security.idm.config import OPTIONS, Config, parse
from tests.conftest import ROOT, free_port, stop_process, wait_until_answering

from .conftest import Clock, make_config, running

pytestmark = pytest.mark.anyio


async def test_admin_from_the_environment_password(tmp_path: Path, anyio_backend: str) -> None:
    config = parse(["-data", str(tmp_path)], {"WAZIUP_ADMIN_EMAIL": "Root@Example.org", "WAZIUP_ADMIN_PASSWORD": "from-env-1"})
    async with running(config, Clock()) as idm:
        assert idm.printed == []
        await idm.login("root@example.org", "from-env-1")
    assert not (tmp_path / "admin-password").exists()


async def test_generated_password_printed_once_and_kept_0600(tmp_path: Path, anyio_backend: str) -> None:
    config = make_config(tmp_path, admin_password="")
    async with running(config, Clock()) as idm:
        assert len(idm.printed) == 1
        password = idm.printed[0].splitlines()[-1]
        path = tmp_path / "admin-password"
        assert path.read_text().strip() == password
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        await idm.login("admin@test.com", password)
    async with running(config, Clock()) as again:  # second start: the admin exists, nothing printed
        assert again.printed == []
        await again.login("admin", password)


def test_no_default_password_in_the_options() -> None:
    assert Config().admin_password == ""
    assert "password" not in " ".join(name for row in OPTIONS.options for name in row.names).lower()
    assert parse([], {"IDM_ADMIN_PASS": "keyrock-name"}).admin_password == "keyrock-name"
    assert "keyrock-name" not in repr(parse([], {"IDM_ADMIN_PASS": "keyrock-name"}))


def test_keyrock_variables() -> None:
    config = parse([], {"IDM_PORT": "4000", "IDM_OAUTH_ACC_LIFETIME": "60", "IDM_OAUTH_REFR_LIFETIME": "120",
                        "IDM_OAUTH_AUTH_LIFETIME": "30", "IDM_API_LIFETIME": "90", "IDM_PDP_LEVEL": "payload",
                        "IDM_HOST": "https://idm.example.org/", "IDM_DB_URI": "postgresql://u@h/db"})
    assert (config.port, config.access_lifetime, config.refresh_lifetime, config.auth_lifetime, config.api_lifetime) == \
        (4000, 60, 120, 30, 90)
    assert config.pdp_level == "payload" and config.issuer_url == "https://idm.example.org"
    assert config.store_url == "postgresql://u@h/db"
    assert Config(data_dir="/srv/x").store_url == "sqlite:////srv/x/idm.db"


async def test_postgresql_store(tmp_path: Path, idm_pg_url: str, anyio_backend: str) -> None:
    async with running(make_config(tmp_path, idm_pg_url), Clock()) as idm:
        await idm.user("alice", "alice-password")
        app = await idm.application()
        r = await idm.password_token(app, "alice", "alice-password")
        assert (await idm.http.get("/user", params={"access_token": r.json()["access_token"]})).status_code == 200


def test_runs_as_a_process(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "WAZIUP_ADMIN_PASSWORD": "proc-pass-1", "WAZIUP_ADMIN_EMAIL": "admin@proc.test"}
    proc = subprocess.Popen([sys.executable, "-m", "security.idm", "-host", "127.0.0.1", "-port", str(port), "-data",
                             str(tmp_path)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(proc, url + "/.well-known/openid-configuration", "idm")
        r = httpx.post(url + "/v3/auth/tokens", json={"name": "admin@proc.test", "password": "proc-pass-1"})
        assert r.status_code == 201 and r.headers["X-Subject-Token"]
        assert httpx.get(url + "/.well-known/openid-configuration").json()["issuer"] == f"http://localhost:{port}"
    finally:
        stop_process(proc)
    assert b"proc-pass-1" not in (proc.stderr.read() if proc.stderr else b"")


def test_help_and_bad_options(capsys: Any) -> None:
    help_run = subprocess.run([sys.executable, "-m", "security.idm", "--help"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert help_run.returncode == 0 and "IDM_PORT" in help_run.stdout and "IDM_OAUTH_ACC_LIFETIME" in help_run.stdout
    bad = subprocess.run([sys.executable, "-m", "security.idm", "-pdpLevel", "advanced"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 1 and "-pdpLevel" in bad.stderr
