"""The PEP rows of ``make bench``: W2 GET through the PEP guard, with a JWT and with an opaque token.

An identity manager (``python -m security.idm``) on loopback with a fresh store; through its
Keyrock API an application, a role whose NGSI policy grants ``read`` on every tenant, and a
user holding it; the user's tokens with the password grant (``scope=jwt`` for the JWT). The
broker is then started again on the same data with ``-guard security.pep:broker_guard``, so
the rows compare with ``W2 GET normalized`` of the same run (issue target: at least 0.8x).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

ADMIN = ("admin@localhost", "bench-admin-password-1")
USER = ("bench@bench.test", "bench-user-password-1")


def start_idm(work: Path, port: int, host: str, start: Any) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "security.idm", "-host", host, "-port", str(port), "-data", str(work / "idm")]
    (work / "idm").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WAZIUP_ADMIN_PASSWORD": ADMIN[1]}
    return start(cmd, port, "/.well-known/openid-configuration", work / "idm.log", env=env)


def tokens(idm: str) -> tuple[str, str]:
    """(a JWT, an opaque token) of a user who may read every tenant."""
    with httpx.Client(base_url=idm, timeout=10) as http:
        h = {"X-Auth-Token": http.post("/v1/auth/tokens", json={"name": ADMIN[0], "password": ADMIN[1]}).headers["X-Subject-Token"]}
        app = http.post("/v1/applications", headers=h, json={"application": {
            "name": "bench", "redirect_uri": "http://bench.test/cb", "url": "http://bench.test",
            "grant_type": ["password"], "token_types": ["jwt"],
        }}).json()["application"]
        base = f"/v1/applications/{app['id']}"
        # JWTs signed with the identity manager's key: the PEP checks them against the JWKS
        algorithm = http.get("/.well-known/openid-configuration").json()["id_token_signing_alg_values_supported"][0]
        http.patch(base, headers=h, json={"application": {"jwt_algorithm": algorithm}}).raise_for_status()
        role = http.post(f"{base}/roles", headers=h, json={"role": {"name": "reader"}}).json()["role"]
        permission = http.post(f"{base}/permissions", headers=h, json={"permission": {
            "name": "read", "action": "NGSI", "resource": "ngsi", "ngsi": {"id": "read", "actions": ["read"], "tenant": "*"},
        }}).json()["permission"]
        http.put(f"{base}/roles/{role['id']}/permissions/{permission['id']}", headers=h).raise_for_status()
        user = http.post("/v1/users", headers=h, json={"user": {"username": "bench", "email": USER[0], "password": USER[1]}})
        http.put(f"{base}/users/{user.json()['user']['id']}/roles/{role['id']}", headers=h).raise_for_status()

        def token(**form: str) -> str:
            answer = http.post("/oauth2/token", auth=(app["id"], app["secret"]),
                               data={"grant_type": "password", "username": USER[0], "password": USER[1], **form})
            answer.raise_for_status()
            return str(answer.json()["access_token"])

        return token(scope="jwt"), token()


def guarded_env(idm: str) -> dict[str, str]:
    return {"WAZIUP_IDM_URL": idm, "WAZIUP_PEP_USERNAME": ADMIN[0], "WAZIUP_PEP_PASSWORD": ADMIN[1]}
