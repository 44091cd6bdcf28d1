"""Mosquitto as ``waziup run``'s MQTT broker: the files it reads under ``<data>/mqtt``, and the process.

Why Mosquitto rather than the embedded amqtt: it speaks MQTT 5 as well as 3.1.1, checks
passwords against a topic ACL, and serves TLS. amqtt stays the fallback where Mosquitto is
not installed (``scripts/install-mosquitto.sh``): open, plain, MQTT 3.1.1 only.

Under ``<data>/mqtt`` (0700, every file 0600):

* ``mosquitto.conf`` and ``acl``: written at every start from the options (edits are lost);
* ``passwd``: the IoT agent's account and a LoRaWAN network server's (``-mqttLoraUser``)
  above the marker line, rewritten at every start; the device groups' accounts below it,
  kept across restarts and maintained by the agent (``iot_agent/mqtt_auth.py``, which
  also owns the hash format and the device ACL patterns: they follow the agent's topics);
* ``agent.secret``, ``lora.secret``: those two accounts' passwords, made once and reused
  (write one before the first start to choose it);
* ``mosquitto.pid`` (the agent signals a reload through it), ``mosquitto.db``
  (persistence: retained messages, sessions), ``mosquitto.log``.

Every user name and password here is generated or checked, never a default.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from iot_agent.mqtt_auth import (
    device_patterns,
    hash_password,
    network_server_topics,
    new_password,
    passwd_text,
    read_passwd,
    username_problem,
    write_private,
)

AGENT_USER = "waziup-iot-agent"
SEARCHED = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")  # Debian's is not on a user's PATH


def find_binary() -> str | None:
    """The mosquitto executable: on the PATH, else where Debian installs it; None: not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((path for path in SEARCHED if os.access(path, os.X_OK)), None)


@dataclass(frozen=True)
class Layout:
    """The files of one data directory (absolute paths: Mosquitto is given them as they are)."""

    directory: Path
    conf: Path
    passwd: Path
    acl: Path
    pid: Path
    log: Path
    agent_secret: Path  # the agent's MQTT password, made once
    lora_secret: Path  # -mqttLoraUser's password, made once

    @classmethod
    def under(cls, data: str) -> Layout:
        d = Path(os.path.abspath(data)) / "mqtt"
        return cls(
            directory=d, conf=d / "mosquitto.conf", passwd=d / "passwd", acl=d / "acl", pid=d / "mosquitto.pid",
            log=d / "mosquitto.log", agent_secret=d / "agent.secret", lora_secret=d / "lora.secret",
        )


@dataclass(frozen=True)
class Listener:
    port: int
    host: str
    cert: str = ""  # with its key: a TLS listener
    key: str = ""


def _line_safe(what: str, value: str) -> str:
    """A value written into a line of Mosquitto's files must not start another line."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"{what} {value!r} holds a line break")
    return value


def config_text(layout: Layout, listeners: list[Listener], *, anonymous: bool) -> str:
    """mosquitto.conf: one set of accounts and ACL for every listener; ``anonymous``:
    clients without a user name are let in (with the ACL's anonymous rights)."""
    lines = [
        "# Written by waziup run (orchestrator/mosquitto.py) at every start: edits are lost.",
        "per_listener_settings false",
        f"allow_anonymous {'true' if anonymous else 'false'}",
        f"password_file {layout.passwd}",
        f"acl_file {layout.acl}",
        "persistence true",
        f"persistence_location {layout.directory}/",
        f"pid_file {layout.pid}",
        f"log_dest file {layout.log}",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    if os.geteuid() == 0:  # as root, Mosquitto would become user "mosquitto", who cannot read these 0600 files
        lines.append("user root")
    for listener in listeners:
        lines.append(f"listener {listener.port} {listener.host}".rstrip())  # no address: every interface
        if listener.cert:
            lines += [f"certfile {listener.cert}", f"keyfile {listener.key}"]
    return "\n".join(_line_safe("a path or address", line) for line in lines) + "\n"


def acl_text(*, agent_user: str, lora_user: str = "", anonymous: bool, strict: bool) -> str:
    """The ACL: anonymous clients everything or nothing; the agent everything; a LoRaWAN
    network server its own topics; devices (user = apikey) their group's (``device_patterns``)."""
    lines = ["# Written by waziup run (orchestrator/mosquitto.py) at every start: edits are lost."]
    if anonymous:  # the first lines, before any "user", are the anonymous clients' (without -auth)
        lines += ["# anonymous clients (waziup run without -auth): everything", "topic readwrite #"]
    lines += ["", f"user {agent_user}", "topic readwrite #"]
    if lora_user:
        lines += ["", f"user {lora_user}", *network_server_topics()]
    lines += ["", f"# device groups: user = apikey; {'strict' if strict else 'group'} reading of commands", *device_patterns(strict)]
    return "\n".join(lines) + "\n"


def secret(path: Path) -> str:
    """The password kept in ``path`` (its first line), else a new one written there (0600)."""
    try:
        kept = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        kept = []
    if kept and kept[0]:
        os.chmod(path, 0o600)
        return kept[0]
    password = new_password()
    write_private(path, password + "\n")
    return password


@dataclass(frozen=True)
class Prepared:
    """What the agent needs to log in and keep the accounts."""

    layout: Layout
    agent_user: str
    agent_password: str


def prepare(
    data: str, listeners: list[Listener], *, auth: bool, strict: bool = False, lora_user: str = ""
) -> Prepared:
    """Write the files for a start (the groups' accounts of the last run kept)."""
    layout = Layout.under(data)
    if lora_user:
        problem = username_problem(lora_user) or ("it is the agent's" if lora_user == AGENT_USER else None)
        if problem:
            raise ValueError(f"-mqttLoraUser {lora_user!r} cannot be an MQTT user name: {problem}")
    layout.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(layout.directory, 0o700)
    agent_password = secret(layout.agent_secret)
    fixed = ["# accounts of waziup run: the IoT agent" + (", the LoRaWAN network server" if lora_user else ""),
             f"{AGENT_USER}:{hash_password(agent_password)}"]
    if lora_user:
        fixed.append(f"{lora_user}:{hash_password(secret(layout.lora_secret))}")
    _, groups = read_passwd(layout.passwd)
    groups = {name: hashed for name, hashed in groups.items() if name not in (AGENT_USER, lora_user)}
    write_private(layout.passwd, passwd_text(fixed, groups))
    write_private(layout.acl, acl_text(agent_user=AGENT_USER, lora_user=lora_user, anonymous=not auth, strict=strict))
    write_private(layout.conf, config_text(layout, listeners, anonymous=not auth))
    return Prepared(layout, AGENT_USER, agent_password)


def start(binary: str, layout: Layout) -> subprocess.Popen[bytes]:
    """Mosquitto in the foreground, as a child: it logs to ``mosquitto.log`` (what it says
    before reading its configuration goes to our stderr)."""
    return subprocess.Popen([binary, "-c", str(layout.conf)])


def log_tail(layout: Layout, lines: int = 5) -> str:
    """The last lines of its log, for an error message (empty when there is none)."""
    try:
        return "\n".join(layout.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
