"""How each runtime is built and run on this host, as data: the build's commands and the
command that runs the app. ``local.py`` runs them; nothing here starts a process, so the
plan can be checked without building anything.

* python: a venv of its own (``--system-site-packages``: the platform's packages, such as
  httpx, are there without a download), then ``pip install -r requirements.txt`` when the
  file lists anything. ``WAZIUP_APPS_WHEELS`` (a folder of wheels) makes pip install from
  it only (``--no-index --find-links``), for hosts without the Internet.
* node: ``npm ci --prefer-offline`` when there is a ``package-lock.json``, then
  ``node <entry>``.
* shell: ``sh -c <entry>``.
* node-red: the ``node-red`` program, from ``WAZIUP_NODE_RED``, the PATH,
  ``<data>/node-red/node_modules/.bin/node-red`` or ``.node-red/`` beside the sources
  (``make run`` installs it there, ``scripts/install-node-red.sh``), run with the app's folder as its user
  directory and the entry as its flows file.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .manifest import Manifest


# where ``make run`` installs it (scripts/install-node-red.sh), beside the venv
_REPO_NODE_RED = Path(__file__).resolve().parents[2] / ".node-red" / "node_modules" / ".bin" / "node-red"


class BuildError(Exception):
    """The app cannot be built (the message says what to do about it)."""


@dataclass(frozen=True)
class Step:
    """One build command, run in the app's folder."""

    what: str  # shown as progress ("creating the venv")
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    command: tuple[str, ...]  # the app's process
    env: dict[str, str] = field(default_factory=dict)  # added to its environment


def _requirements(folder: Path) -> bool:
    path = folder / "requirements.txt"
    if not path.is_file():
        return False
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(errors="replace").splitlines())
    return any(lines)


def python_plan(manifest: Manifest, folder: Path, environ: Mapping[str, str]) -> Plan:
    venv = folder / ".venv"
    python = str(venv / "bin" / "python")
    wanted = _requirements(folder)
    # without requirements, no pip in the venv: ensurepip is most of a venv's making
    steps = [Step("creating the venv", (sys.executable, "-m", "venv", "--system-site-packages",
                                        *(() if wanted else ("--without-pip",)), str(venv)))]
    if wanted:
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-r", "requirements.txt"]
        wheels = environ.get("WAZIUP_APPS_WHEELS", "")
        if wheels:
            pip += ["--no-index", "--find-links", wheels]
        steps.append(Step("installing requirements.txt", tuple(pip)))
    entry = shlex.split(manifest.entry)
    if entry[:1] == ["-m"]:
        command = (python, "-u", *entry)
    else:
        if not (folder / entry[0]).is_file():
            raise BuildError(f"entry: {entry[0]} is not a file of the app")
        command = (python, "-u", *entry)
    return Plan(tuple(steps), command, {"VIRTUAL_ENV": str(venv), "PYTHONUNBUFFERED": "1"})


def node_plan(manifest: Manifest, folder: Path, environ: Mapping[str, str]) -> Plan:
    node = shutil.which("node", path=environ.get("PATH"))
    if node is None:
        raise BuildError("runtime node: node is not installed on this host (install Node.js 18 or later)")
    steps: list[Step] = []
    if (folder / "package-lock.json").is_file():
        npm = shutil.which("npm", path=environ.get("PATH"))
        if npm is None:
            raise BuildError("runtime node: npm is not installed on this host")
        steps.append(Step("npm ci", (npm, "ci", "--prefer-offline", "--no-audit", "--no-fund")))
    entry = shlex.split(manifest.entry)
    if not (folder / entry[0]).is_file():
        raise BuildError(f"entry: {entry[0]} is not a file of the app")
    return Plan(tuple(steps), (node, *entry))


def shell_plan(manifest: Manifest, folder: Path, environ: Mapping[str, str]) -> Plan:
    return Plan((), ("/bin/sh", "-c", manifest.entry))


def find_node_red(data: Path, environ: Mapping[str, str]) -> str | None:
    given = environ.get("WAZIUP_NODE_RED", "")
    if given:
        return given if os.access(given, os.X_OK) else None
    found = shutil.which("node-red", path=environ.get("PATH"))
    if found:
        return found
    for local in (data / "node-red" / "node_modules" / ".bin" / "node-red", _REPO_NODE_RED):
        if os.access(local, os.X_OK):
            return str(local)
    return None


def node_red_plan(manifest: Manifest, folder: Path, environ: Mapping[str, str], data: Path) -> Plan:
    program = find_node_red(data, environ)
    if program is None:
        raise BuildError(
            "runtime node-red: Node-RED is not installed on this host. Install it with "
            f"`npm install --prefix {data / 'node-red'} node-red`, or set WAZIUP_NODE_RED to its program")
    if not (folder / manifest.entry).is_file():
        raise BuildError(f"entry: {manifest.entry} is not a file of the app (the flows file)")
    steps: list[Step] = []
    npm = shutil.which("npm", path=environ.get("PATH"))
    if (folder / "package-lock.json").is_file() and npm:
        steps.append(Step("npm ci (extra nodes)", (npm, "ci", "--prefer-offline", "--no-audit", "--no-fund")))
    # The port comes from the environment at run time: `-p $PORT` through the shell. The editor
    # is off (httpAdminRoot=false): it has no login, and whoever reached it could run code with
    # the app's credentials; flows are changed in the app's folder and deployed again.
    command = ("/bin/sh", "-c", f'exec {shlex.quote(program)} -u . -p "${{PORT:-1880}}" -D uiHost=127.0.0.1 '
                                     f'-D httpAdminRoot=false {shlex.quote(manifest.entry)}')
    return Plan(tuple(steps), command)


def plan(manifest: Manifest, folder: Path, data: Path, environ: Mapping[str, str] | None = None) -> Plan:
    """The build and run plan of ``manifest`` in ``folder`` (BuildError when this host lacks the runtime)."""
    environ = os.environ if environ is None else environ
    if manifest.runtime == "python":
        return python_plan(manifest, folder, environ)
    if manifest.runtime == "node":
        return node_plan(manifest, folder, environ)
    if manifest.runtime == "shell":
        return shell_plan(manifest, folder, environ)
    if manifest.runtime == "node-red":
        return node_red_plan(manifest, folder, environ, data)
    raise BuildError(f"runtime: {manifest.runtime!r} is not known")
