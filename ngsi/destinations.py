"""Where the platform may send requests on a user's behalf: the destination policy (SSRF guard).

Subscriptions (notification URLs), registrations (context providers), HTTP device
commands, and later external sources and apps, all make the platform call a URL that a
client chose. Without a policy a client can aim it at the platform's own internal
services (``http://127.0.0.1:4041/`` is the IoT agent's north port) or at a cloud
metadata endpoint (``http://169.254.169.254/`` hands out credentials). Every such URL
goes through one ``Policy``:

* ``check_url(url)`` is pure (no DNS): it reads the URL as the HTTP and MQTT clients
  will, host obfuscations included, and decides for literal addresses and for the
  ``localhost`` names. Other host names pass, with ``kind == "name"``: only their
  addresses can tell. Use it to refuse a subscription or registration at creation time.
* ``check_resolved(url)`` resolves the name and checks every address (see there).

What is decided, for an address (literal, or resolved from a name):

* always denied, whatever the allow rules: link-local addresses (169.254.0.0/16,
  fe80::/10), the known cloud metadata addresses (169.254.169.254, fd00:ec2::254,
  100.100.100.200, 192.0.0.192) and the unspecified ones (0.0.0.0/8, ::; connecting to
  0.0.0.0 reaches this very host). No rule is a good reason to call them;
* denied unless an allow rule matches host, port and path (or the policy is built with
  ``deny_private=False``): loopback (127.0.0.0/8, ::1, ``localhost``, ``*.localhost``),
  private (10/8, 172.16/12, 192.168/16), shared CGNAT (100.64/10), unique-local
  (fc00::/7) and site-local (fec0::/10) IPv6, multicast, and every other reserved or
  special-purpose block (240/4, broadcast, documentation and benchmark nets, ...);
* allowed: public addresses.

IPv6 addresses that embed an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible,
NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the IPv4 address they lead to.

Host forms read as addresses, because the system resolver (``getaddrinfo``, i.e.
``inet_aton``) and WHATWG URL parsers read them so: decimal ``2130706433``, hex
``0x7f000001`` and ``0x7f.0.0.1``, octal ``0177.0.0.1`` (and so ``010.0.0.1`` is 8.0.0.1),
short ``127.1``, a trailing dot, upper case, percent-encoding (``%31%32%37.0.0.1``),
non-ASCII look-alikes that IDNA maps to ASCII (fullwidth ``１２７.０.０.１``), userinfo
(``http://a@127.0.0.1/``), IPv6 zones (``[fe80::1%25eth0]``). A host whose last label is
a number but that is no valid IPv4 address is refused as malformed (as WHATWG does), and
so are URLs with spaces, control characters or a backslash in the authority: forms two
parsers could read differently are not guessed at.

Allow rules (``Rule.parse``): ``host[:port][/path-prefix]`` where host is a name, an IP
address or a CIDR block: ``127.0.0.1:8668/v2/notify``, ``localhost:4041``,
``10.0.0.0/8``, ``[::1]:7896/iot``, ``[fd00::/8]``; an optional ``scheme://`` in front
restricts the scheme. A ``/N`` right after an IP address is a prefix length, not a path.
A name rule matches that name only (``localhost:4041`` does not allow
``127.0.0.1:4041``, nor the reverse), and the names it resolves to. A path prefix
matches whole segments (``/v2/notify`` matches ``/v2/notify`` and ``/v2/notify/x``, not
``/v2/notifyx``), and only clean paths: one with ``.``/``..`` or empty segments, or an
encoded slash, matches no path rule, because servers normalise such paths differently.

Only http, https, mqtt and mqtts destinations are handled; other schemes are denied.
Every ``Decision`` carries a reason fit for an HTTP 400 description and a subscription's
``lastFailureReason``. Not covered here, for the callers: HTTP proxies taken from the
environment (the proxy would make the connection) and redirects (each hop is a new
destination); the platform's clients use neither for user destinations.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Iterable[str | IPAddress]]]

DEFAULT_PORTS: Final = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883}
DEFAULT_SETTING: Final = "-notifAllowedHosts"


# --------------------------------------------------------------------------- address classes


@dataclass(frozen=True, slots=True)
class _Class:
    kind: str  # "metadata", "loopback", "private", ..., "public"
    text: str  # "a loopback address": completes "destination X is ..."
    always_denied: bool = False


_LINK_LOCAL = _Class("link-local", "a link-local/cloud-metadata address", True)
_METADATA = _Class("metadata", "a link-local/cloud-metadata address", True)
_UNSPECIFIED = _Class("unspecified", "an unspecified address (it reaches this host)", True)
_LOOPBACK = _Class("loopback", "a loopback address")
_PRIVATE = _Class("private", "a private address")
_SHARED = _Class("shared", "a shared (CGNAT) address")
_UNIQUE_LOCAL = _Class("unique-local", "a unique-local IPv6 address")
_SITE_LOCAL = _Class("site-local", "a site-local IPv6 address")
_MULTICAST = _Class("multicast", "a multicast address")
_RESERVED = _Class("reserved", "a reserved/special-purpose address")
_PUBLIC = _Class("public", "a public address")

_METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
_METADATA_NAMES: Final = frozenset({"metadata.google.internal", "metadata.goog", "instance-data.ec2.internal"})
# The special ranges of each class, IPv4 and IPv6 side by side (none overlaps another).
_SPECIAL_RANGES: Final = (
    (_LINK_LOCAL, "169.254.0.0/16", "fe80::/10"),
    (_UNSPECIFIED, "0.0.0.0/8", "::/128"),
    (_LOOPBACK, "127.0.0.0/8", "::1/128"),
    (_PRIVATE, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
    (_SHARED, "100.64.0.0/10"),
    (_UNIQUE_LOCAL, "fc00::/7"),
    (_SITE_LOCAL, "fec0::/10"),
    (_MULTICAST, "224.0.0.0/4", "ff00::/8"),
    (_RESERVED, "64:ff9b:1::/48"),  # local-use NAT64: where the IPv4 part sits varies
)
_NETWORKS: Final = [(ipaddress.ip_network(text), klass) for klass, *texts in _SPECIAL_RANGES for text in texts]
_V4_CLASSES: Final = tuple((network, klass) for network, klass in _NETWORKS if network.version == 4)
_V6_CLASSES: Final = tuple((network, klass) for network, klass in _NETWORKS if network.version == 6)
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to: IPv4-mapped, NAT64, 6to4, IPv4-compatible."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _classify(address: IPAddress) -> _Class:
    if address in _METADATA_ADDRESSES:
        return _METADATA
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            found = _classify(inner)
            if found is not _PUBLIC or address not in _IPV4_COMPATIBLE:
                return found  # IPv4-compatible addresses (deprecated) lead nowhere public
        for network6, klass in _V6_CLASSES:
            if address in network6:
                return klass
        return _RESERVED if address.is_reserved or not address.is_global else _PUBLIC
    for network4, klass in _V4_CLASSES:
        if address in network4:
            return klass
    return _PUBLIC if address.is_global else _RESERVED


# --------------------------------------------------------------------------- host forms

_NUMERIC_LABEL = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)")
_NAME_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\\]")  # spaces, controls, backslash
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``text`` means to ``inet_aton`` (and so to ``getaddrinfo``) and to
    WHATWG URLs: one to four parts, each decimal, ``0x`` hex or ``0``-led octal, the last
    part filling the bytes left. None when it is no such address."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        value = _ipv4_number(part)
        if value is None:
            return None
        values.append(value)
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (5 - len(values))):
        return None
    number = last
    for i, value in enumerate(head):
        number |= value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _ipv4_number(part: str) -> int | None:
    if len(part) > 32 or not part.isascii():
        return None
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part[0] == "0":
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits.isalnum():
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


def _ip_literal(text: str) -> IPAddress | None:
    """An IPv6 address (zone dropped) or a standard IPv4 one; None for anything else."""
    try:
        return ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Target:
    """A destination URL as the clients will use it."""

    scheme: str
    host: str  # a canonical address (IPv6 without brackets) or a lower-case ASCII name
    written: str  # the host as the URL wrote it, for messages
    address: IPAddress | None  # the literal address, None for a name
    port: int
    path: str  # without the query

    def where(self, address: IPAddress | None = None, *, port: bool = True) -> str:
        """``host[:port]`` for messages, IPv6 bracketed."""
        shown = str(address if address is not None else self.address or self.host)
        if ":" in shown:
            shown = f"[{shown}]"
        return f"{shown}:{self.port}" if port else shown


def _brief(url: str) -> str:
    """``url`` quoted for a message, cut when long: reasons go back to clients and logs."""
    return repr(url if len(url) <= 120 else url[:117] + "...")


class BadDestination(ValueError):
    """A URL that is no destination; the message is the reason given to the client,
    ``kind`` is "scheme" (not one the platform calls) or "malformed"."""

    def __init__(self, reason: str, kind: str = "malformed") -> None:
        super().__init__(reason)
        self.kind = kind


def parse_target(url: str) -> Target:
    """Read ``url`` as the clients will (``urlsplit``, then ``getaddrinfo``'s reading of
    the host), normalising every host form; BadDestination when it can't be used."""
    # Where the host is read, such characters make parsers disagree (urlsplit drops tabs and
    # line breaks, WHATWG reads a backslash as a slash): refused. In the path and query the
    # clients percent-encode them (ngsi/client/http11.py): nothing to decide there.
    start = _SCHEME.match(url)
    authority = url[start.end():] if start else url
    authority = authority[: min((i for i in (authority.find(c) for c in "/?#") if i >= 0), default=len(authority))]
    if _UNSAFE_URL.search(authority) is not None or (start is None and _UNSAFE_URL.search(url) is not None):
        raise BadDestination(f"destination URL {_brief(url)} has spaces, control characters or a backslash in its host")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise BadDestination(f"destination URL {_brief(url)} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BadDestination(
            f"destination scheme {parts.scheme!r} is not allowed (only http, https, mqtt, mqtts)", "scheme"
        )
    authority = parts.netloc.rpartition("@")[2]
    if authority.startswith("["):
        inside, bracket, rest = authority[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise BadDestination(f"destination URL {_brief(url)} has a malformed IPv6 host")
        written, port_text = inside, rest[1:] if rest else ""
        address = _ip_literal(unquote(inside))
        if not isinstance(address, ipaddress.IPv6Address):
            raise BadDestination(f"destination URL {_brief(url)} has a malformed IPv6 host")
        host = str(address)
    else:
        written, _, port_text = authority.partition(":")
        host, address = _host(written, url)
    return Target(scheme, host, written, address, _port(port_text, scheme, url), parts.path or "/")


def _host(written: str, url: str) -> tuple[str, IPAddress | None]:
    if not written:
        raise BadDestination(f"destination URL {_brief(url)} has no host")
    try:
        host = unquote(written, errors="strict").lower()
        if not host.isascii():
            host = host.encode("idna").decode("ascii")  # what socket.getaddrinfo does with it
    except (UnicodeError, ValueError):
        raise BadDestination(f"destination URL {_brief(url)} has a host that is not a valid name") from None
    host = host.removesuffix(".")
    if len(host) > 253 or not host:
        raise BadDestination(f"destination URL {_brief(url)} has a host that is not a valid name")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        address = inet_aton(host)
        if address is None:
            raise BadDestination(f"destination host {written!r} is neither an IPv4 address nor a host name")
        return str(address), address
    if not all(_NAME_LABEL.fullmatch(label) for label in labels):
        raise BadDestination(f"destination URL {_brief(url)} has a host that is not a valid name")
    return host, None


def _port(text: str, scheme: str, url: str) -> int:
    if not text:
        return DEFAULT_PORTS[scheme]
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 0 < int(text) <= 0xFFFF:
        raise BadDestination(f"destination URL {_brief(url)} has an invalid port")
    return int(text)


def _clean_path(path: str) -> str | None:
    """``path`` when path rules may judge it; None when servers could read it differently
    (dot segments, empty segments, encoded slashes)."""
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered:
        return None
    segments = lowered.replace("%2e", ".").split("/")[1:]
    if any(s in ("", ".", "..") for s in segments[:-1]) or segments[-1:] in ([".."], ["."]):
        return None
    return path


# --------------------------------------------------------------------------- rules

_RULE = re.compile(
    r"(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://)?"
    r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:/\[\]]+))"
    r"(?:/(?P<bits>[0-9]{1,3})(?=$|[:/]))?"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/.*)?"
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One allowed destination: a name or an address block, maybe a port, a path prefix
    and a scheme."""

    name: str | None = None
    network: IPNetwork | None = None
    port: int | None = None
    path: str | None = None
    scheme: str | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        """``[scheme://]host[:port][/path]`` with host a name, an address or a CIDR block
        (IPv6 in brackets, or bare when nothing follows); ValueError when malformed."""
        text = text.strip()
        bare = _bare_ipv6(text)
        if bare is not None:
            return cls(network=bare)
        m = _RULE.fullmatch(text)
        if m is None:
            raise ValueError(f"allowed destination {text!r} is not host[:port][/path]")
        scheme = m["scheme"].lower() if m["scheme"] else None
        if scheme is not None and scheme not in DEFAULT_PORTS:
            raise ValueError(f"allowed destination {text!r} has an unknown scheme")
        port = int(m["port"]) if m["port"] else None
        if port is not None and not 0 < port <= 0xFFFF:
            raise ValueError(f"allowed destination {text!r} has an invalid port")
        path = m["path"] or None
        if m["v6"] is not None:
            network = _network(m["v6"], m["bits"], text)
            return cls(network=network, port=port, path=path, scheme=scheme)
        host = m["host"].lower().rstrip(".")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None or m["bits"] is not None:
            network = _network(host, m["bits"], text)
            return cls(network=network, port=port, path=path, scheme=scheme)
        if not host or not all(_NAME_LABEL.fullmatch(label) for label in host.split(".")):
            raise ValueError(f"allowed destination {text!r} has an invalid host")
        return cls(name=host, port=port, path=path, scheme=scheme)

    def matches(self, target: Target, address: IPAddress | None) -> bool:
        """Does this rule allow ``target`` (reaching ``address``, when known)?"""
        if self.scheme is not None and self.scheme != target.scheme:
            return False
        if self.port is not None and self.port != target.port:
            return False
        if self.path is not None and not _under(target.path, self.path):
            return False
        if self.name is not None:
            return target.address is None and self.name == target.host
        return address is not None and _in_network(address, self.network)

    def __str__(self) -> str:
        host = self.name or str(self.network)
        if self.network is not None and self.network.num_addresses == 1:
            host = str(self.network.network_address)
        if ":" in host:
            host = f"[{host}]"
        text = f"{self.scheme}://{host}" if self.scheme else host
        return text + (f":{self.port}" if self.port else "") + (self.path or "")


def _bare_ipv6(text: str) -> IPNetwork | None:
    if text.count(":") < 2 or "[" in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _network(host: str, bits: str | None, text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(host if bits is None else f"{host}/{bits}", strict=False)
    except ValueError:
        raise ValueError(f"allowed destination {text!r} has an invalid address or block") from None


def _in_network(address: IPAddress, network: IPNetwork | None) -> bool:
    if network is None:
        return False
    if address.version == network.version and address in network:
        return True
    inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return inner is not None and inner in network


def _under(path: str, prefix: str) -> bool:
    clean = _clean_path(path)
    if clean is None:
        return False
    prefix = prefix.rstrip("/")
    return clean == prefix or clean.startswith(prefix + "/") or not prefix


def parse_rules(text: str) -> list[Rule]:
    """Rules from a setting's value: separated by commas or white space."""
    return [Rule.parse(item) for item in re.split(r"[,\s]+", text) if item]


# --------------------------------------------------------------------------- the policy


@dataclass(frozen=True, slots=True)
class Decision:
    """May the platform call there? ``reason`` says why, in words for the client;
    ``addresses``: those it may connect to (after ``check_resolved``, or a literal)."""

    allowed: bool
    reason: str
    kind: str  # the class that decided: "public", "loopback", "metadata", "name", "malformed", ...
    addresses: tuple[IPAddress, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def failure(self) -> str:
        """The text a refused call records (a subscription's ``lastFailureReason``): a name
        that does not resolve is curl's "Could not resolve hostname", as Orion shows it;
        ``reason`` keeps the resolver's detail for the log."""
        return UNRESOLVED if self.kind == "unresolved" else self.reason


UNRESOLVED = "Could not resolve hostname"


async def resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for ``host`` (``getaddrinfo`` in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Policy:
    """The destination policy: see the module docstring for what it decides and why."""

    def __init__(
        self, allow: Iterable[str | Rule] = (), deny_private: bool = True, setting: str = DEFAULT_SETTING
    ) -> None:
        self.rules = tuple(r if isinstance(r, Rule) else Rule.parse(r) for r in allow)
        self.deny_private = deny_private
        self.setting = setting  # the option that holds the rules, named in refusals

    def check_url(self, url: str) -> Decision:
        """The decision for ``url`` without resolving anything: literal addresses and
        ``localhost`` names are decided; other names pass (``kind="name"``) and must go
        through ``check_resolved`` before a connection."""
        try:
            target = parse_target(url)
        except BadDestination as exc:
            return Decision(False, str(exc), exc.kind)
        return self._check_target(target)

    async def check_resolved(self, url: str, resolver: Resolver = resolve) -> Decision:
        """The decision for ``url`` after resolving its host: EVERY address must be
        allowed, since the client may use any of them, and a name whose answers mix
        public and internal addresses is refused. The decision's ``addresses`` are those
        that may be connected to.

        DNS rebinding: a name can resolve to a public address now and to 127.0.0.1 a
        second later. So callers check again at send time, right before connecting, and
        connect to one of ``addresses`` (with the name kept for Host/SNI) instead of
        letting the client resolve the name a second time."""
        try:
            target = parse_target(url)
        except BadDestination as exc:
            return Decision(False, str(exc), exc.kind)
        decision = self._check_target(target)
        if not decision.allowed or target.address is not None:
            return decision
        try:
            found = await resolver(target.host, target.port)
            addresses = _unique(found)
        except (OSError, UnicodeError, ValueError) as exc:
            return Decision(False, f"destination {target.where()} could not be resolved: {exc}", "unresolved")
        if not addresses:
            return Decision(False, f"destination {target.where()} resolves to no address", "unresolved")
        kinds = []
        for address in addresses:
            klass = _classify(address)
            if not self._allows(target, address, klass):
                return self._refusal(target, address, klass, resolved=True)
            kinds.append(klass.kind)
        kind = next((k for k in kinds if k != "public"), "public")
        listed = ", ".join(map(str, addresses))
        return Decision(True, f"destination {target.where()} resolves to {listed}: allowed", kind, addresses)

    def _check_target(self, target: Target) -> Decision:
        if target.address is not None:
            klass = _classify(target.address)
            if not self._allows(target, target.address, klass):
                return self._refusal(target, target.address, klass, resolved=False)
            shown = self._shown(target, target.address, port=True)
            return Decision(True, f"destination {shown} is {klass.text}: allowed", klass.kind, (target.address,))
        if target.host in _METADATA_NAMES:
            return Decision(False, f"destination {target.host} is {_METADATA.text}", _METADATA.kind)
        if target.host == "localhost" or target.host.endswith(".localhost"):
            if not self._allows(target, None, _LOOPBACK):
                return self._refusal(target, None, _LOOPBACK, resolved=False)
            return Decision(True, f"destination {target.where()} is {_LOOPBACK.text}: allowed", _LOOPBACK.kind)
        return Decision(True, f"destination {target.where()} is a host name: its addresses decide", "name")

    def _allows(self, target: Target, address: IPAddress | None, klass: _Class) -> bool:
        if klass.always_denied:
            return False
        if klass is _PUBLIC or not self.deny_private:
            return True
        return any(rule.matches(target, address) for rule in self.rules)

    def _refusal(self, target: Target, address: IPAddress | None, klass: _Class, *, resolved: bool) -> Decision:
        always = klass.always_denied
        if resolved:
            where = f"{target.where(port=not always)} resolves to {address}, which is"
        else:
            where = f"{self._shown(target, address, port=not always)} is"
        tail = "" if always else f" not in the allowed destinations ({self.setting})"
        return Decision(False, f"destination {where} {klass.text}{tail}", klass.kind)

    @staticmethod
    def _shown(target: Target, address: IPAddress | None, *, port: bool) -> str:
        """``host[:port]``, with the host as written when that differs (``0x7f000001``)."""
        shown = target.where(address, port=port)
        canonical = str(address) if address is not None else target.host
        written = target.written.lower().rstrip(".")
        if written not in (canonical, f"[{canonical}]"):
            shown += f" (written {target.written})"
        return shown


def _unique(found: Iterable[str | IPAddress]) -> tuple[IPAddress, ...]:
    addresses: list[IPAddress] = []
    for item in found:
        address = item if not isinstance(item, str) else ipaddress.ip_address(item.partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    return tuple(addresses)


# --------------------------------------------------------------------------- the gate


class Refused(Exception):
    """A destination the policy refuses; ``reason`` is the text for the client."""

    def __init__(self, reason: str, kind: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # the Decision's kind: "unresolved" is a DNS failure, not a refusal


class Gate:
    """The policy where the platform's clients send: per request and per connection.

    ``check(url)`` decides a request before it is sent, path rules included: the pure
    decision is cached per URL, and a name's addresses for ``ttl`` seconds, so a
    notification costs a dict lookup. ``connect_to(scheme, host, port)`` is the HTTP
    client's hook when it opens a connection: it resolves the name afresh, checks every
    address (host and port rules; paths were checked per request) and returns the
    addresses to connect to, so that a name that changes its answer between the two
    checks (DNS rebinding) reaches nothing it should not: the client connects to what
    was checked, not to what a second lookup gives.
    """

    def __init__(self, policy: Policy, resolver: Resolver = resolve, ttl: float = 10.0) -> None:
        self.policy = policy
        self.resolver = resolver
        self.ttl = ttl
        self._decided: dict[str, Decision] = {}
        self._resolved: dict[tuple[str, int], tuple[float, tuple[str | IPAddress, ...]]] = {}
        # the same rules without their paths, for connections (see connect_to)
        hosts = [dataclasses.replace(rule, path=None) for rule in policy.rules]
        self._hosts = Policy(hosts, deny_private=policy.deny_private, setting=policy.setting)

    def check_url(self, url: str) -> Decision:
        decision = self._decided.get(url)
        if decision is None:
            decision = self.policy.check_url(url)
            if len(self._decided) >= 4096:
                self._decided.clear()
            self._decided[url] = decision
        return decision

    async def check(self, url: str) -> Decision:
        """May a request go to ``url`` now? (names resolved, with a short cache)"""
        decision = self.check_url(url)
        if decision.kind != "name":
            return decision
        return await self.policy.check_resolved(url, self._cached_resolver)

    async def check_created(self, url: str) -> Decision:
        """At creation (a subscription, a registration): refuse what is refused now; a
        name that does not resolve yet is accepted (it is checked again when used)."""
        decision = await self.check(url)
        if not decision.allowed and decision.kind == "unresolved":
            return Decision(True, decision.reason, "name")
        return decision

    async def refuse_created(self, urls: Iterable[str]) -> None:
        """Raise Refused for the first URL (of a subscription or registration being created)
        that ``check_created`` refuses. A URL still holding a macro (``${...}``) is decided
        when it is sent, once the macro is replaced."""
        for url in urls:
            if "${" in url:
                continue
            decision = await self.check_created(url)
            if not decision.allowed:
                raise Refused(decision.reason)

    async def connect_to(self, scheme: str, host: str, port: int) -> tuple[str, ...]:
        """The addresses a new connection to ``host:port`` may use; Refused otherwise.
        Paths were checked per request: here every rule counts for its host and port."""
        url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}/"
        decision = self._hosts.check_url(url)
        if decision.kind == "name":
            decision = await self._hosts.check_resolved(url, self.resolver)
        if not decision.allowed:
            raise Refused(decision.failure, decision.kind)
        return tuple(str(address) for address in decision.addresses) or (host,)

    async def _cached_resolver(self, host: str, port: int) -> list[str | IPAddress]:
        now = time.monotonic()
        cached = self._resolved.get((host, port))
        if cached is not None and cached[0] > now:
            return list(cached[1])
        found = tuple(await self.resolver(host, port))
        if len(self._resolved) >= 1024:
            self._resolved.clear()
        self._resolved[(host, port)] = (now + self.ttl, found)
        return list(found)


