"""Build and run plans per runtime (``orchestrator/apps/runtimes.py``), and a node app
built and run for real where Node.js is installed."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from orchestrator.appserver.config import Config
from orchestrator.apps.local import LocalBackend
from orchestrator.apps.manifest import parse_manifest
from orchestrator.apps.runtimes import BuildError, plan
from orchestrator.waziup_api.store import open_store


def manifest(runtime: str, entry: str) -> object:
    return parse_manifest({"name": "an-app", "runtime": runtime, "entry": entry})


def test_python_plans(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print(1)\n")
    bare = plan(manifest("python", "app.py"), tmp_path, tmp_path, {})  # type: ignore[arg-type]
    assert len(bare.steps) == 1 and "--without-pip" in bare.steps[0].argv and "--system-site-packages" in bare.steps[0].argv
    assert bare.command[1:] == ("-u", "app.py") and bare.env["VIRTUAL_ENV"].endswith(".venv")
    (tmp_path / "requirements.txt").write_text("# nothing but a comment\n\n")
    assert len(plan(manifest("python", "app.py"), tmp_path, tmp_path, {}).steps) == 1  # type: ignore[arg-type]
    (tmp_path / "requirements.txt").write_text("somepkg==1\n")
    offline = plan(manifest("python", "app.py"), tmp_path, tmp_path, {"WAZIUP_APPS_WHEELS": "/w"})  # type: ignore[arg-type]
    assert "--without-pip" not in offline.steps[0].argv
    assert offline.steps[1].argv[-4:] == ("requirements.txt", "--no-index", "--find-links", "/w")
    module = plan(manifest("python", "-m pkg.main --flag"), tmp_path, tmp_path, {})  # type: ignore[arg-type]
    assert module.command[1:] == ("-u", "-m", "pkg.main", "--flag")
    with pytest.raises(BuildError, match="entry: missing.py is not a file"):
        plan(manifest("python", "missing.py"), tmp_path, tmp_path, {})  # type: ignore[arg-type]


def test_shell_and_node_red_plans(tmp_path: Path) -> None:
    assert plan(manifest("shell", "echo hi"), tmp_path, tmp_path, {}).command == ("/bin/sh", "-c", "echo hi")  # type: ignore[arg-type]
    with pytest.raises(BuildError, match="npm install --prefix .* node-red"):
        plan(manifest("node-red", "flows.json"), tmp_path, tmp_path,  # type: ignore[arg-type]
             {"WAZIUP_NODE_RED": str(tmp_path / "no-node-red"), "PATH": ""})


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_a_node_app_runs(tmp_path: Path) -> None:
    app = tmp_path / "node-app"
    app.mkdir()
    (app / "waziup-app.yaml").write_text("name: node-app\nruntime: node\nentry: server.js\n"
                                         "ports: [{name: web, port: 3000}]\nhealth: {path: /health, interval: 0.5}\n")
    (app / "server.js").write_text(
        "require('http').createServer((q, r) => { r.writeHead(q.url === '/health' ? 200 : 404); r.end(); })"
        ".listen(Number(process.env.PORT_WEB), '127.0.0.1', () => console.log('up on ' + process.env.PORT));\n")
    config = Config(data_dir=str(tmp_path / "data"), broker_url="http://127.0.0.1:9")

    async def work() -> None:
        store = open_store(config.store_url)
        await store.open()
        backend = LocalBackend(config, store)
        try:
            status = await backend.deploy(str(app))
            assert status["healthy"] and status["runtime"] == "node"
            lines = [line async for line in backend.logs("node-app", 10)]
            assert f"up on {status['ports']['web']}" in lines
            await backend.undeploy("node-app")
        finally:
            await backend.close()
            await store.close()

    asyncio.run(asyncio.wait_for(work(), 30))
