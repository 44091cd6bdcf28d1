"""MQTT accounts of device groups, kept in step with provisioning, for a Mosquitto broker.

Why: an MQTT broker that takes anyone lets any client read every device's traffic
(``#``) and publish measures as any device. iotagent-node-lib leaves MQTT security to
whoever runs the broker; here the agent, which knows the groups, keeps the broker's
accounts: a device logs in with username = its group's apikey and the group's password,
and the ACL (:func:`device_patterns`, written by ``waziup run``) lets that account publish
only under its apikey's topics and read only its commands.

* **Password file** (``--mqtt-passwd-file``, Mosquitto 2's format, :func:`hash_password`).
  The lines above :data:`MARKER` are not the agent's (``waziup run`` writes the agent's own
  account and a LoRaWAN network server's there; an operator may add others): they are kept
  as they are, and their user names cannot be apikeys. Below it, one line per apikey, written
  here. Every write replaces the whole file at once (0600), then Mosquitto is told to reload
  (SIGHUP to the pid in ``--mqtt-broker-pidfile``): it rereads both files and disconnects the
  clients whose account went.
* **Passwords.** A group's account is made when the first group with its apikey is created,
  with a generated password that the admin reads once (``GET /iot/mqtt/credentials``); it is
  held in memory only until then, never written in clear (an agent restart before it is
  read loses it: ``POST`` makes a new one). ``POST /iot/mqtt/credentials`` sets a new
  password, given or generated, answered once. The account goes with the last group of its
  apikey. Passwords are never logged.

At start-up (:meth:`MqttAccounts.sync`) the accounts follow the registry: groups created
while the agent ran without ``--mqtt-passwd-file`` get one, accounts of apikeys no group
has any more go.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .device import JSON, UL
from .errors import DeviceGroupNotFound, IoTAError, WrongSyntax
from .provisioning import model
from .provisioning.store import ProvisioningStore
from .south.mqtt import SUBSCRIPTIONS

log = logging.getLogger("waziup.iot_agent.mqtt_auth")

Doc = dict[str, Any]

MARKER = "# -- MQTT accounts of the device groups (username = apikey), kept by the IoT agent: do not edit below --"
# PBKDF2 rounds: each CONNECT costs Mosquitto (single-threaded) one hash. Generated passwords
# carry 190 bits, where rounds add nothing; chosen ones must be MIN_PASSWORD long. 101 is
# mosquitto_passwd's default; 1000 costs about a millisecond.
ITERATIONS = 1000
SALT_BYTES = 12  # as mosquitto_passwd
MIN_PASSWORD = 16
# Apikeys that cannot be MQTT accounts: a protocol name would make topics ambiguous
# (``ul/<x>/attrs/attrs`` reads as device ``attrs`` of apikey ``<x>``).
RESERVED = frozenset({UL, JSON})
_FORBIDDEN = set("/+#:")  # topic levels and wildcards (ACL %u), the password file's separator



def _tail(topic_filter: str) -> str:
    """``+/+/+/attrs/+`` -> ``attrs/+``: a subscription without its protocol, apikey and device levels."""
    levels = topic_filter.split("/")
    while levels and levels[0] == "+":
        levels.pop(0)
    return "/".join(levels)


# Topics a device publishes, from the agent's own subscriptions (south/mqtt.py), so that the
# two cannot drift apart: attrs, attrs/+, cmdexe, configuration/commands.
PUBLISH_TAILS = tuple(dict.fromkeys(_tail(f) for f in SUBSCRIPTIONS))
# Topics the agent publishes to a device (south/mqtt.py deliver, _configuration).
READ_TAILS = ("cmd", "configuration/values")


# -- Mosquitto's password hashes ----------------------------------------------------------------


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``$7$<iterations>$<salt>$<hash>``: PBKDF2-HMAC-SHA512, base64 (Mosquitto 2's type 7,
    what ``mosquitto_passwd`` writes)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (ours or mosquitto_passwd's)."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), base64.b64decode(salt, validate=True), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def new_password() -> str:
    """32 URL-safe characters (190 bits): typed into a device's configuration as is."""
    return secrets.token_urlsafe(24)


def username_problem(name: str) -> str | None:
    """Why ``name`` cannot be an MQTT account, or None when it can."""
    if not name:
        return "it is empty"
    if name in RESERVED:
        return "it is a protocol name of the topics (ul, json)"
    if _FORBIDDEN & set(name):
        return "it holds one of / + # :"
    if not name.isprintable() or any(c.isspace() for c in name):
        return "it holds spaces or control characters"
    return None


# -- files --------------------------------------------------------------------------------------


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Whole or not at all (a temporary file renamed over it), readable by its owner only
    (0600) from the start. Mosquitto reading during the write sees the old file or the new."""
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)


def read_passwd(path: str | os.PathLike[str]) -> tuple[list[str], dict[str, str]]:
    """(the lines above :data:`MARKER`, kept as they are; {username: hash} below it).
    A missing file is empty; a file without the marker is all kept lines."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], {}
    if MARKER not in lines:
        return lines, {}
    at = lines.index(MARKER)
    accounts: dict[str, str] = {}
    for line in lines[at + 1 :]:
        name, colon, hashed = line.partition(":")
        if colon and name and not line.startswith("#"):
            accounts[name] = hashed
    return lines[:at], accounts


def passwd_text(kept: Iterable[str], accounts: Mapping[str, str]) -> str:
    lines = [*kept, MARKER, *(f"{name}:{hashed}" for name, hashed in sorted(accounts.items()))]
    return "\n".join(lines) + "\n"


def users_of(lines: Iterable[str]) -> set[str]:
    """The user names of password-file lines (comments and blanks skipped)."""
    return {line.partition(":")[0] for line in lines if ":" in line and not line.startswith("#")}


def signal_reload(pidfile: str) -> bool:
    """SIGHUP to the Mosquitto whose pid ``pidfile`` holds: it rereads its password and ACL
    files. A pid that is not a mosquitto process (a stale file, the pid reused) is left
    alone: SIGHUP ends most processes. False (logged) when no signal was sent."""
    try:
        pid = int(Path(pidfile).read_text().strip())
        if Path("/proc/self/comm").exists() and "mosquitto" not in Path(f"/proc/{pid}/comm").read_text():
            log.warning("MQTT broker pid file %s names process %s, which is not mosquitto: not signalled", pidfile, pid)
            return False
        os.kill(pid, signal.SIGHUP)
        return True
    except (OSError, ValueError) as exc:
        log.warning("could not tell the MQTT broker (pid file %s) to reload its accounts: %s", pidfile, exc)
        return False


# -- the ACL ------------------------------------------------------------------------------------


def device_patterns(strict: bool) -> list[str]:
    """Mosquitto ``pattern`` lines for device accounts (``%u`` = the apikey).

    Publishing: every topic form the agent reads (``/<apikey>/<device>/attrs``, with or
    without ``/ul`` or ``/json`` before it, with or without the leading slash), any device
    of the group (a gateway publishes for several). Reading: the commands and configuration
    answers of the device the client id names (``strict``: client id = device id), else of
    any device of the group. Patterns apply to every account, the agent's included; they
    grant nothing to anonymous clients (no ``%u``)."""
    lines = []
    for tail in PUBLISH_TAILS:
        for prefix in ("", f"{UL}/", f"{JSON}/"):
            for slash in ("/", ""):
                lines.append(f"pattern write {slash}{prefix}%u/+/{tail}")
    device = "%c" if strict else "+"
    lines += [f"pattern read /%u/{device}/{tail}" for tail in READ_TAILS]
    return lines


def network_server_topics() -> list[str]:
    """``topic`` lines of a LoRaWAN network server's account (south/lora.py's topics):
    ChirpStack (``application/<app>/device/<eui>/event/<kind>`` out,
    ``.../command/down`` in) and The Things Stack (``v3/<app>/devices/<dev>/...`` out,
    ``.../down/push``, ``.../down/replace`` in). None of them can be read as a device topic."""
    return [
        "topic write application/+/device/+/event/+",
        "topic read application/+/device/+/command/down",
        "topic write v3/+/devices/+/#",
        "topic read v3/+/devices/+/down/push",
        "topic read v3/+/devices/+/down/replace",
    ]


# -- the accounts, following provisioning -------------------------------------------------------


class CredentialsNotAvailable(
    IoTAError, name="MQTT_CREDENTIALS_NOT_AVAILABLE", code=404,
    template="The MQTT password of apikey {} was read already, or never generated here: "
    "POST /iot/mqtt/credentials sets a new one",
):
    """GET /iot/mqtt/credentials after the one reading of a generated password."""


class NotAnAccount(IoTAError, name="MQTT_ACCOUNT_REFUSED", code=409, template="apikey {} cannot be an MQTT user name: {}"):
    """An apikey that cannot log in to MQTT (see :func:`username_problem`)."""


class MqttAccounts:
    """The groups' accounts in the password file, and the admin's two endpoints.

    One apikey is one account, whatever the number of its groups (``/iot/d`` and
    ``/iot/json``, or several tenants: topics carry the apikey only, so apikeys must be
    unique across tenants anyway)."""

    def __init__(self, registry: ProvisioningStore, passwd_file: str, pidfile: str = "") -> None:
        self.registry = registry
        self.passwd_file = passwd_file
        self.pidfile = pidfile
        kept, self.accounts = read_passwd(passwd_file)
        self.reserved = users_of(kept)
        self.unread: dict[str, str] = {}  # apikey -> generated password not read yet (memory only)

    # -- state ------------------------------------------------------------------------------

    def _problem(self, apikey: str) -> str | None:
        if apikey in self.reserved:
            return "it is the user name of another MQTT account"
        return username_problem(apikey)

    def _save(self) -> None:
        """Rewrite the file (the kept lines as they are now on disk), then reload Mosquitto."""
        kept, _ = read_passwd(self.passwd_file)
        self.reserved = users_of(kept)
        write_private(self.passwd_file, passwd_text(kept, self.accounts))
        if self.pidfile:
            signal_reload(self.pidfile)

    def _create(self, apikey: str) -> bool:
        problem = self._problem(apikey)
        if problem is not None:
            log.warning("group apikey %r gets no MQTT account: %s", apikey, problem)
            return False
        password = new_password()
        self.accounts[apikey] = hash_password(password)
        self.unread[apikey] = password
        log.info("MQTT account of apikey %s created; its password is to be read once at GET /iot/mqtt/credentials", apikey)
        return True

    def _drop(self, apikey: str) -> bool:
        self.unread.pop(apikey, None)
        if self.accounts.pop(apikey, None) is None:
            return False
        log.info("MQTT account of apikey %s removed (no group has it any more)", apikey)
        return True

    async def _in_use(self, apikey: str) -> bool:
        return bool(await self.registry.find_groups(apikey=apikey, limit=1))

    async def sync(self) -> None:
        """At start-up: an account for each apikey of the registry's groups, none other."""
        wanted = {str(g.get("apikey") or "") for g in await self.registry.find_groups()}
        changed = False
        for apikey in sorted(wanted - set(self.accounts)):
            changed |= self._create(apikey)
        for apikey in sorted(set(self.accounts) - wanted):
            changed |= self._drop(apikey)
        if changed or not Path(self.passwd_file).exists():
            self._save()

    async def on_provisioning(self, event: str, old: Doc | None, new: Doc | None) -> None:
        """A provisioning listener: an account with the first group of an apikey, none after
        its last (a group whose apikey changes moves to the new one's account)."""
        if event != "group":
            return
        before = str((old or {}).get("apikey") or "")
        after = str((new or {}).get("apikey") or "")
        if before == after:
            return
        changed = False
        if after and after not in self.accounts:
            changed |= self._create(after)
        if before and before in self.accounts and not await self._in_use(before):
            changed |= self._drop(before)
        if changed:
            try:
                self._save()
            except OSError as exc:  # the group is provisioned all the same; the next change writes again
                log.error("MQTT accounts not written to %s: %s", self.passwd_file, exc)

    def set_password(self, apikey: str, password: str | None) -> str:
        """A new password for ``apikey`` (generated when None); the old one stops working."""
        problem = self._problem(apikey)
        if problem is not None:
            raise NotAnAccount(apikey, problem)
        chosen = password if password is not None else new_password()
        self.accounts[apikey] = hash_password(chosen)
        self.unread.pop(apikey, None)
        self._save()
        log.info("MQTT password of apikey %s set", apikey)
        return chosen

    # -- the admin's endpoints (north port, behind the same guards as /iot/groups) ----------

    async def _group_apikey(self, request: Request, apikey: Any) -> str:
        """The apikey asked for, if a group of the request's tenant has it (404 otherwise)
        and no group of another tenant does (409): the account is the apikey's, and one
        tenant must not read or change the password another tenant's devices use."""
        service, subservice = model.tenant(request.headers)
        if not isinstance(apikey, str) or not apikey:
            raise WrongSyntax("apikey is missing")
        groups = await self.registry.find_groups(apikey=apikey)
        within = model.subservice_filter(subservice)
        mine = [g for g in groups if g.get("service") == service and within in (None, g.get("subservice"))]
        if not mine:
            raise DeviceGroupNotFound(["service", "subservice", "apikey"], [service, subservice, apikey])
        if len(mine) < len(groups):
            raise NotAnAccount(apikey, "groups of other tenants have it too: its password is nobody's to read or set")
        return apikey

    async def endpoint(self, request: Request) -> Response:
        """``GET ?apikey=``: the generated password, once. ``POST {"apikey", "password"?}``:
        a new password (generated when absent, else at least MIN_PASSWORD characters)."""
        if request.method == "GET":
            apikey = await self._group_apikey(request, request.query_params.get("apikey"))
            password = self.unread.pop(apikey, None)
            if password is None:
                raise CredentialsNotAvailable(apikey)
            return _secret(apikey, password)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise WrongSyntax("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise WrongSyntax("the body must be an object: {\"apikey\": ..., \"password\": ...}")
        apikey = await self._group_apikey(request, body.get("apikey"))
        password = body.get("password")
        if password is not None and (not isinstance(password, str) or len(password) < MIN_PASSWORD or not password.isprintable()):
            raise WrongSyntax(f"password must be a string of at least {MIN_PASSWORD} printable characters")
        return _secret(apikey, self.set_password(apikey, password))

    def routes(self) -> list[Route]:
        return [Route("/iot/mqtt/credentials", self.endpoint, methods=["GET", "POST"])]


def _secret(username: str, password: str) -> Response:
    return Response(
        orjson.dumps({"username": username, "password": password}),
        media_type="application/json; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )
