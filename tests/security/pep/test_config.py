"""Configuration: the guard's WAZIUP_* variables; the proxy's Wilma JSON file and PEP_PROXY_*
variables (every one of the admin guide's table), their precedence, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ngsi.settings import SettingsError
from security.pep.config import IGNORED_ENV, WILMA_ENV, from_wilma, parse
from security.pep.settings import from_environ

# the table of reference/wilma/admin_guide.md, "Configuration using environment variables"
ADMIN_GUIDE_VARIABLES = (
    "PEP_PROXY_PORT", "PEP_PROXY_HTTPS_ENABLED", "PEP_PROXY_HTTPS_PORT", "PEP_PROXY_IDM_HOST", "PEP_PROXY_IDM_PORT",
    "PEP_PROXY_IDM_SSL_ENABLED", "PEP_PROXY_APP_HOST", "PEP_PROXY_APP_PORT", "PEP_PROXY_APP_SSL_ENABLED",
    "PEP_PROXY_ORG_ENABLED", "PEP_PROXY_ORG_HEADER", "PEP_PROXY_APP_ID", "PEP_PROXY_USERNAME", "PEP_PROXY_PASSWORD",
    "PEP_PROXY_TOKEN_SECRET", "PEP_PROXY_TRUSTED_APPS", "PEP_PROXY_AUTH_ENABLED", "PEP_PROXY_PDP",
    "PEP_PROXY_PDP_PROTOCOL", "PEP_PROXY_PDP_HOST", "PEP_PROXY_PDP_PORT", "PEP_PROXY_PDP_PATH",
    "PEP_PROXY_TENANT_HEADER", "PEP_PROXY_AZF_PROTOCOL", "PEP_PROXY_AZF_HOST", "PEP_PROXY_AZF_PORT",
    "PEP_PROXY_AZF_CUSTOM_POLICY", "PEP_PROXY_PUBLIC_PATHS", "PEP_PROXY_CORS_ORIGIN", "PEP_PROXY_CORS_METHODS",
    "PEP_PROXY_CORS_OPTIONS_SUCCESS_STATUS", "PEP_PROXY_CORS_ALLOWED_HEADERS", "PEP_PROXY_CORS_CREDENTIALS",
    "PEP_PROXY_CORS_MAX_AGE", "PEP_PROXY_AUTH_FOR_NGINX", "PEP_PROXY_MAGIC_KEY", "PEP_PROXY_ERROR_TEMPLATE",
)


def test_the_guard_needs_an_identity_manager_and_the_ours_pdp_its_login() -> None:
    with pytest.raises(SettingsError, match="WAZIUP_IDM_URL"):
        from_environ({})
    with pytest.raises(SettingsError, match="WAZIUP_PEP_USERNAME"):
        from_environ({"WAZIUP_IDM_URL": "http://idm:3005"})
    settings = from_environ({"WAZIUP_IDM_URL": "http://idm:3005", "WAZIUP_PEP_PDP": "none"})
    assert settings.pdp == "none" and settings.public("broker") == ("/version",)
    full = from_environ({
        "WAZIUP_IDM_URL": "http://idm:3005", "WAZIUP_PEP_APP_ID": "a1", "WAZIUP_PEP_USERNAME": "pep",
        "WAZIUP_PEP_PASSWORD": "pw", "WAZIUP_PEP_JWT_SECRET": "s", "WAZIUP_PEP_TRUSTED_APPS": "a2, a3",
        "WAZIUP_PEP_PUBLIC_PATHS": "", "WAZIUP_PEP_DENY_STATUS": "401", "WAZIUP_PEP_CACHE_TIME": "60",
        "WAZIUP_PEP_POLICY_POLL_MS": "250",
    })
    assert (full.app_id, full.trusted_apps, full.public("broker"), full.deny_status, full.cache_time) == (
        "a1", ("a2", "a3"), (), 401, 60)
    assert full.password == "pw" and "pw" not in repr(full) and full.jwt_secret == "s" and "'s'" not in repr(full)
    with pytest.raises(SettingsError):
        from_environ({"WAZIUP_IDM_URL": "http://idm", "WAZIUP_PEP_PDP": "none", "WAZIUP_PEP_DENY_STATUS": "402"})
    with pytest.raises(SettingsError):
        from_environ({"WAZIUP_IDM_URL": "ftp://idm", "WAZIUP_PEP_PDP": "none"})


WILMA = {
    "pep_port": 1027,
    "idm": {"host": "keyrock", "port": 3005, "ssl": False},
    "app": {"host": "orion", "port": "1026", "ssl": False},
    "organizations": {"enabled": False, "header": "fiware-service"},
    "pep": {"app_id": "a1", "username": "pep_proxy", "password": "pw", "token": {"secret": "jwt-secret"},
            "trusted_apps": ["a2"]},
    "authorization": {"enabled": True, "pdp": "idm", "header": "fiware-service",
                      "location": {"protocol": "http", "host": "localhost", "port": 8080}},
    "public_paths": ["/public/*"],
    "magic_key": None,
    "cache_time": 300,
    "error_template": '{"type": "{{type}}", "title": "{{title}}", "detail": "{{message}}"}',
    "auth_for_nginx": False,
}


def test_a_wilma_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(WILMA))
    config = parse(["-config", str(path)], {})
    assert (config.port, config.idm_url, config.upstream) == (1027, "http://keyrock:3005", "http://orion:1026")
    assert (config.app_id, config.username, config.password, config.jwt_secret) == (
        "a1", "pep_proxy", "pw", "jwt-secret")
    assert (config.trusted_apps, config.pdp, config.tenant_header, config.public_paths) == (
        ("a2",), "idm", "fiware-service", ("/public/*",))
    assert config.magic_key == "" and config.auth_for_nginx is False and config.deny_status == 403


def test_wilmas_variables_over_the_file_and_ours_over_both(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(WILMA))
    environ = {"PEP_PROXY_IDM_HOST": "idm2", "PEP_PROXY_IDM_SSL_ENABLED": "true", "PEP_PROXY_PDP": "opa",
               "PEP_PROXY_PDP_HOST": "opa", "PEP_PROXY_PDP_PORT": "8181", "PEP_PROXY_PDP_PATH": "/v1/data/authz",
               "PEP_PROXY_MAGIC_KEY": "m", "PEP_PROXY_AUTH_FOR_NGINX": "true", "PEP_PROXY_PUBLIC_PATHS": "/a,/b/*",
               "WAZIUP_PEP_DENY_STATUS": "401", "PEP_PROXY_PORT": "2000"}
    config = parse(["-config", str(path), "-port", "3000"], environ)
    assert config.idm_url == "https://idm2:3005" and config.pdp == "opa"
    assert config.pdp_url == "http://opa:8181/v1/data/authz" and config.magic_key == "m" and config.auth_for_nginx
    assert config.public_paths == ("/a", "/b/*") and config.deny_status == 401 and config.port == 3000


def test_every_variable_of_the_admin_guide_is_mapped_or_said_to_be_ignored() -> None:
    listed = set(ADMIN_GUIDE_VARIABLES)
    assert len(listed) == 37 and listed == set(WILMA_ENV) | set(IGNORED_ENV)


def env_only() -> dict[str, str]:
    return {"PEP_PROXY_IDM_HOST": "idm", "PEP_PROXY_APP_HOST": "orion", "PEP_PROXY_APP_PORT": "1026",
            "PEP_PROXY_APP_ID": "a1", "PEP_PROXY_AUTH_ENABLED": "true", "PEP_PROXY_PDP": "azf",
            "PEP_PROXY_AZF_HOST": "azf", "PEP_PROXY_TOKEN_SECRET": "sec", "PEP_PROXY_TRUSTED_APPS": "x,y",
            "PEP_PROXY_CORS_ORIGIN": "*"}


def test_variables_alone_and_what_is_ignored() -> None:
    config = parse([], env_only())
    assert (config.idm_url, config.upstream, config.pdp, config.pdp_url) == (
        "http://idm:3005", "http://orion:1026", "azf", "http://azf:8080")
    assert config.jwt_secret == "sec" and config.trusted_apps == ("x", "y")
    assert "PEP_PROXY_CORS_ORIGIN" in config.ignored


@pytest.mark.parametrize(("change", "message"), [
    ({"PEP_PROXY_AZF_CUSTOM_POLICY": "policy.js"}, "custom_policy"),
    ({"PEP_PROXY_PDP": "iShare"}, "iShare"),
    ({"PEP_PROXY_APP_PORT": "eighty"}, "PEP_PROXY_APP_PORT"),
    ({"PEP_PROXY_AUTH_ENABLED": "maybe"}, "PEP_PROXY_AUTH_ENABLED"),
])
def test_what_would_change_a_decision_unseen_is_refused(change: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse([], {**env_only(), **change})


@pytest.mark.parametrize("doc", [
    {"idm": "keyrock"}, {"pep": {"trusted_apps": 5}}, {"cache_time": -1}, {"pep_port": "x"},
    {"authorization": {"enabled": True, "location": {"host": "h", "protocol": "gopher"}}},
])
def test_a_bad_file_is_said_so(doc: dict[str, Any]) -> None:
    with pytest.raises(SettingsError):
        from_wilma(doc)


def test_magic_key_is_off_and_authorization_too_by_default() -> None:
    config = parse(["-idmURL", "http://idm:3005", "-appURL", "http://orion:1026"], {})
    assert config.magic_key == "" and config.pdp == "none" and config.public_paths is None
    assert config.public("proxy") == ()
