"""The agent's log administration, ``GET``/``PUT /admin/log``, as iotagent-node-lib serves it
(iotagent-node-lib-api.md, "Log operations"): against the agent process, with plain HTTP
and with a FIWARE client (FiLiP's ``IoTAClient``, in its own venv as in
tests/analytics/test_filip.py), and in-process for the effect on the agent's loggers."""

from __future__ import annotations

import json
import logging
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iot_agent.app import create_app
from iot_agent.config import Config, ConfigError, parse

from .conftest import AgentStack

ROOT = Path(__file__).resolve().parents[2]
FILIP_PYTHON = ROOT / ".venv-filip" / "bin" / "python"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def restore_waziup_level() -> Iterator[None]:
    logger = logging.getLogger("waziup")
    before = logger.level
    yield
    logger.setLevel(before)


def test_get_log_answers_the_level_the_agent_started_with(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Retrieve log level `GET /admin/log`": 200 and a JSON
    payload with a single attribute ``level``; no fiware-service needed."""
    response = httpx.get(stack.north + "/admin/log")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"level": "INFO"}


def test_put_log_changes_the_level_then_get_reads_it(stack: AgentStack, restore_waziup_level: None) -> None:
    """iotagent-node-lib-api.md, "Modify Loglevel `PUT /admin/log`": the ``level`` query
    parameter, case-insensitive, 200 when valid; later GETs answer it."""
    try:
        for given, read in (("debug", "DEBUG"), ("FATAL", "FATAL"), ("WARNING", "WARNING"), ("WARN", "WARN")):
            response = httpx.put(stack.north + "/admin/log", params={"level": given})
            assert response.status_code == 200, response.text
            assert httpx.get(stack.north + "/admin/log").json() == {"level": read}
    finally:
        httpx.put(stack.north + "/admin/log", params={"level": "INFO"})


@pytest.mark.parametrize("params", [{"level": "VERBOSE"}, {"level": ""}, {}], ids=["unknown", "empty", "missing"])
def test_put_log_refuses_a_bad_level_in_the_agents_error_shape(stack: AgentStack, params: dict[str, str]) -> None:
    """iotagent-node-lib-api.md, "Modify Loglevel `PUT /admin/log`": ``level`` is mandatory
    and one of INFO, ERROR, FATAL, DEBUG, WARNING. The reference gives no error for a bad
    one: ours is a 400 in the agents' shape (docs/iot_agent.md), and the level is kept."""
    response = httpx.put(stack.north + "/admin/log", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"name", "message"} and body["name"] == "WRONG_SYNTAX"
    assert "log level" in body["message"]
    assert httpx.get(stack.north + "/admin/log").json() == {"level": "INFO"}


@pytest.mark.anyio
async def test_put_log_sets_the_agents_logger_threshold(restore_waziup_level: None) -> None:
    """iotagent-node-lib-api.md, "Modify Loglevel `PUT /admin/log`": the new level applies
    to future logs: the agent's loggers (``waziup.*``) emit DEBUG after PUT DEBUG and
    nothing under ERROR after PUT ERROR."""
    app = create_app(Config())  # no lifespan: the admin routes need no registry
    agent_logger = logging.getLogger("waziup.iot_agent.south")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as client:
        assert (await client.put("/admin/log", params={"level": "DEBUG"})).status_code == 200
        assert agent_logger.isEnabledFor(logging.DEBUG)
        assert (await client.put("/admin/log", params={"level": "ERROR"})).status_code == 200
        assert not agent_logger.isEnabledFor(logging.WARNING)
        assert agent_logger.isEnabledFor(logging.ERROR)
        assert (await client.get("/admin/log")).json() == {"level": "ERROR"}


def test_the_start_up_level_is_one_the_put_would_take() -> None:
    """iotagent-node-lib-admin.md, "loglevel" (DEBUG, INFO, ERROR, FATAL) and api.md,
    "Modify Loglevel": ``--log-level`` / ``IOTA_LOG_LEVEL`` take the levels ``PUT
    /admin/log`` takes, in any case; anything else stops start-up naming the option,
    where it used to fall back to INFO unsaid."""
    assert parse(["--log-level", "debug"]).log_level == "debug"
    assert parse([], {"IOTA_LOG_LEVEL": "WARN"}).log_level == "WARN"
    with pytest.raises(ConfigError, match="--log-level"):
        parse(["--log-level", "verbose"])
    with pytest.raises(ConfigError, match="IOTA_LOG_LEVEL"):
        parse([], {"IOTA_LOG_LEVEL": "trace"})


FILIP_SESSION = textwrap.dedent(
    """
    import json, sys
    import requests
    from filip.clients.ngsi_v2 import IoTAClient
    from filip.models.base import FiwareHeader

    # FiLiP 0.8.1's change_loglevel_of_agent deletes fiware-service from the session's
    # headers (KeyError without them) before sending the PUT without them: a session carrying
    # the tenant, as FiLiP users keep one, is what it expects.
    session = requests.Session()
    session.headers.update({"fiware-service": "filip", "fiware-servicepath": "/"})
    client = IoTAClient(url=sys.argv[1], session=session,
                        fiware_header=FiwareHeader(service="filip", service_path="/"))
    out = {"initial": client.get_loglevel_of_agent()}
    client.change_loglevel_of_agent("debug")
    out["after_debug"] = client.get_loglevel_of_agent()
    client.change_loglevel_of_agent("INFO")
    out["after_info"] = client.get_loglevel_of_agent()
    print(json.dumps(out))
    """
)


def test_filip_reads_and_changes_the_agents_log_level(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Log operations", through a FIWARE client library: FiLiP
    0.8's ``IoTAClient.get_loglevel_of_agent`` / ``change_loglevel_of_agent``."""
    if not FILIP_PYTHON.exists():
        pytest.fail(f"{FILIP_PYTHON} is missing: `make test` installs FiLiP there", pytrace=False)
    run = subprocess.run([str(FILIP_PYTHON), "-c", FILIP_SESSION, stack.north],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out == {"initial": "INFO", "after_debug": "DEBUG", "after_info": "INFO"}
