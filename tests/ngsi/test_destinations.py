"""Tests of ngsi.destinations, the policy for every URL the platform calls for a user.

Every way of writing an internal address must be recognised (the URL forms table and the
property over textual forms), the allow rules must match exactly host, port and path,
and resolution must check every address a name gives.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi.destinations import (
    BadDestination,
    Decision,
    Gate,
    Policy,
    Refused,
    Rule,
    inet_aton,
    parse_rules,
    parse_target,
    resolve,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def decide(url: str, *allow: str, deny_private: bool = True) -> Decision:
    return Policy(list(allow), deny_private=deny_private).check_url(url)


# --------------------------------------------------------------------------- address forms

# (url, kind, a rule that allows it, a rule for the same host on another port or path)
FORMS = [
    ("http://[::1]:4041/", "loopback", "[::1]:4041", "[::1]:4042"),
    ("http://[0:0:0:0:0:0:0:1]:4041/", "loopback", "[::1]:4041", "[::1]:4042"),
    ("http://localhost/", "loopback", "localhost", "localhost:8080"),
    ("HTTP://LOCALHOST.:4041/", "loopback", "localhost:4041", "localhost:4040"),
    ("http://api.localhost:4041/", "loopback", "api.localhost:4041", "api.localhost:1"),
    ("http://2130706433/", "loopback", "127.0.0.1:80", "127.0.0.1:81"),
    ("http://0x7f000001/", "loopback", "127.0.0.1", "127.0.0.1:8080"),
    ("http://0X7F000001/", "loopback", "127.0.0.0/8", "127.0.0.0/8:8080"),
    ("http://0x7f.0.0.1/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://017700000001/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://0177.0.0.1/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://127.1/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://127.0.1/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://[::ffff:127.0.0.1]/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://[::FFFF:7F00:1]/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://[::127.0.0.1]/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://[2002:7f00:1::]/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://127.0.0.1./", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://a@127.0.0.1/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://a:b@evil.com@127.0.0.1/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://%31%32%37.0.0.1/", "loopback", "127.0.0.1", "127.0.0.1:1"),
    ("http://１２７.０.０.１/", "loopback", "127.0.0.1", "127.0.0.1:1"),  # fullwidth: IDNA maps it
    ("http://ｌｏｃａｌｈｏｓｔ。/", "loopback", "localhost", "localhost:1"),
    ("http://127.0.0.1:8668/v2/notify", "loopback", "127.0.0.1:8668/v2/notify", "127.0.0.1:8668/v2/other"),
    ("http://127.0.0.1:8668/v2/notify/x?a=1", "loopback", "127.0.0.1:8668/v2/notify", "127.0.0.1:8668/v2/notifyx"),
    ("http://[::1]:7896/iot/d?k=1", "loopback", "[::1]:7896/iot", "[::1]:7896/iota"),
    ("http://[::1]:7896/iot", "loopback", "http://[::1]:7896", "https://[::1]:7896"),
    ("mqtt://127.0.0.1", "loopback", "127.0.0.1:1883", "127.0.0.1:8883"),
    ("mqtts://[::1]/", "loopback", "mqtts://[::1]", "mqtt://[::1]"),
    ("http://10.1.2.3:8080/", "private", "10.0.0.0/8", "10.0.0.0/8:8081"),
    ("http://172.16.0.1/", "private", "172.16.0.0/12", "172.16.0.0/12/v2"),
    ("http://192.168.1.5/", "private", "192.168.1.5", "192.168.1.6"),
    ("http://3232235777/", "private", "192.168.1.1", "192.168.1.1:1"),
    ("http://[64:ff9b::10.0.0.1]/", "private", "10.0.0.1", "10.0.0.2"),
    ("http://100.64.1.1/", "shared", "100.64.0.0/10", "100.64.0.0/16:1"),
    ("http://[fd12::1]/", "unique-local", "[fd00::/8]", "[fe00::/8]"),
    ("http://[fd12::1]/", "unique-local", "fd00::/8", "fc00::/8"),
    ("http://[fec0::1]/", "site-local", "[fec0::1]", "[fec0::1]:1"),
    ("http://224.0.0.1/", "multicast", "224.0.0.1", "224.0.0.1:1"),
    ("http://[ff02::1]/", "multicast", "[ff02::1]", "[ff02::1]:1"),
    ("http://240.0.0.1/", "reserved", "240.0.0.0/4", "240.0.0.0/4:1"),
    ("http://255.255.255.255/", "reserved", "255.255.255.255", "255.255.255.255:1"),
    ("http://192.0.2.1/", "reserved", "192.0.2.0/24", "192.0.2.0/24:1"),
    ("http://[2001:db8::1]/", "reserved", "[2001:db8::/32]", "[2001:db8::/32]:1"),
]


@pytest.mark.parametrize("url, kind, allowing, other", FORMS)
def test_internal_forms_need_a_matching_rule(url: str, kind: str, allowing: str, other: str) -> None:
    denied = decide(url)
    assert not denied.allowed and denied.kind == kind, denied
    assert "not in the allowed destinations (-notifAllowedHosts)" in denied.reason
    allowed = decide(url, allowing)
    assert allowed.allowed and allowed.kind == kind, allowed
    assert not decide(url, other).allowed
    assert decide(url, other, allowing).allowed  # any matching rule is enough
    assert decide(url, deny_private=False).allowed


ALWAYS_DENIED = [
    ("http://169.254.169.254/latest/meta-data/", "metadata", "169.254.169.254"),
    ("http://169.254.169.254:80/", "metadata", "169.254.0.0/16"),
    ("http://2852039166/", "metadata", "169.254.169.254"),  # decimal
    ("http://0xa9fea9fe/", "metadata", "169.254.169.254"),
    ("http://0251.0376.0251.0376/", "metadata", "169.254.169.254"),
    ("http://169.254.43518/", "metadata", "169.254.169.254"),
    ("http://[::ffff:169.254.169.254]/", "metadata", "169.254.169.254"),
    ("http://[fd00:ec2::254]/", "metadata", "[fd00:ec2::254]"),
    ("http://100.100.100.200/", "metadata", "100.100.100.200"),
    ("http://192.0.0.192/", "metadata", "192.0.0.192"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata", "metadata.google.internal"),
    ("http://169.254.1.1/", "link-local", "169.254.1.1"),
    ("http://[fe80::1]/", "link-local", "[fe80::1]"),
    ("http://[fe80::1%25eth0]:8080/", "link-local", "[fe80::/10]"),
    ("http://0.0.0.0/", "unspecified", "0.0.0.0"),
    ("http://0/", "unspecified", "0.0.0.0"),
    ("http://0.0.0.0:4041/", "unspecified", "0.0.0.0/8"),
    ("http://[::]/", "unspecified", "[::]"),
]


@pytest.mark.parametrize("url, kind, rule", ALWAYS_DENIED)
def test_link_local_metadata_and_unspecified_are_never_allowed(url: str, kind: str, rule: str) -> None:
    for policy in (Policy(), Policy([rule]), Policy([rule], deny_private=False)):
        decision = policy.check_url(url)
        assert not decision.allowed and decision.kind == kind, decision
        assert "allowed destinations" not in decision.reason


def test_reasons_read_well() -> None:
    assert (
        decide("http://169.254.169.254/").reason == "destination 169.254.169.254 is a link-local/cloud-metadata address"
    )
    assert decide("http://127.0.0.1:4041/").reason == (
        "destination 127.0.0.1:4041 is a loopback address not in the allowed destinations (-notifAllowedHosts)"
    )
    assert decide("http://0x7f000001:4041/").reason == (
        "destination 127.0.0.1:4041 (written 0x7f000001) is a loopback address"
        " not in the allowed destinations (-notifAllowedHosts)"
    )
    assert decide("http://[::1]:7896/").reason.startswith("destination [::1]:7896 is a loopback address")
    iota = Policy(setting="-providerAllowedHosts").check_url("http://10.0.0.1/")
    assert iota.reason.endswith("(-providerAllowedHosts)")


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8/",
        "https://1.1.1.1:8443/v2/notify",
        "http://[2606:4700:4700::1111]/",
        "http://[::ffff:8.8.8.8]/",
        "http://[64:ff9b::8.8.8.8]/",
        "http://93.184.216.34/",
        "http://010.0.0.1/",  # octal: 8.0.0.1, public, as the resolver reads it
        "mqtt://8.8.4.4",
        "mqtts://8.8.4.4:8884",
    ],
)
def test_public_addresses_are_allowed(url: str) -> None:
    decision = decide(url)
    assert decision.allowed and decision.kind == "public", decision
    assert len(decision.addresses) == 1


def test_names_pass_check_url_to_be_decided_after_resolution() -> None:
    decision = decide("https://orion.example.org:1026/v2/op/notify")
    assert decision.allowed and decision.kind == "name" and decision.addresses == ()


@pytest.mark.parametrize(
    "url, kind",
    [
        ("ftp://8.8.8.8/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://8.8.8.8:70/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("8.8.8.8:80", "scheme"),
        ("http://", "malformed"),
        ("http:///x", "malformed"),
        ("http://:80/", "malformed"),
        ("http://127.0.0.1:99999/", "malformed"),
        ("http://8.8.8.8:0/", "malformed"),
        ("http://8.8.8.8:+80/", "malformed"),
        ("http://8.8.8.8:80:81/", "malformed"),
        ("http://[::1/", "malformed"),
        ("http://[::1]x/", "malformed"),
        ("http://[127.0.0.1]/", "malformed"),
        ("http://999.0.0.1/", "malformed"),
        ("http://1.2.3.4.5/", "malformed"),
        ("http://1.2.3.0x100/", "malformed"),
        ("http://08.0.0.1/", "malformed"),  # not octal, not decimal
        ("http://127.0.0.1\\@8.8.8.8/", "malformed"),  # parsers disagree on '\'
        ("http://8.8.8.8\\.evil/", "malformed"),
        ("http://exa mple.com/", "malformed"),
        ("http://8.8.8.8\t/", "malformed"),
        ("http://example.com%00.evil/", "malformed"),
        ("http://a_b..c/", "malformed"),
    ],
)
def test_unusable_urls_are_denied_with_a_reason(url: str, kind: str) -> None:
    decision = decide(url, "0.0.0.0/0", "::/0")
    assert not decision.allowed and decision.kind == kind, decision
    assert decision.reason.startswith("destination")


@pytest.mark.parametrize(
    "path, allowed",
    [
        ("/v2/notify", True),
        ("/v2/notify/", True),
        ("/v2/notify/sub/x", True),
        ("/v2/notify?x=/../admin", True),  # the query is no path
        ("/v2/notifyx", False),
        ("/v2", False),
        ("/", False),
        ("/v2/notify/../../admin", False),
        ("/v2/notify/%2e%2e/admin", False),
        ("/v2/notify/%2E./admin", False),
        ("/v2/notify/..", False),
        ("/v2/notify/./x", False),
        ("/v2/notify//x", False),
        ("/v2/notify%2f..%2fadmin", False),
        ("/v2/notify%5c..%5cadmin", False),
    ],
)
def test_path_rules_match_whole_clean_segments(path: str, allowed: bool) -> None:
    assert decide("http://127.0.0.1:8668" + path, "127.0.0.1:8668/v2/notify").allowed is allowed


def test_name_rules_and_address_rules_do_not_stand_for_each_other() -> None:
    assert not decide("http://127.0.0.1:4041/", "localhost:4041").allowed
    assert not decide("http://localhost:4041/", "127.0.0.1:4041").allowed


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    "text, name, network, port, path, scheme",
    [
        ("127.0.0.1:8668/v2/notify", None, "127.0.0.1/32", 8668, "/v2/notify", None),
        ("localhost:4041", "localhost", None, 4041, None, None),
        ("LocalHost.", "localhost", None, None, None, None),
        ("10.0.0.0/8", None, "10.0.0.0/8", None, None, None),
        ("10.0.0.0/8:1026/v2", None, "10.0.0.0/8", 1026, "/v2", None),
        ("10.1.2.3/8", None, "10.0.0.0/8", None, None, None),
        ("[::1]:7896/iot", None, "::1/128", 7896, "/iot", None),
        ("[fd00::/8]:1883", None, "fd00::/8", 1883, None, None),
        ("fd00::/8", None, "fd00::/8", None, None, None),
        ("::1", None, "::1/128", None, None, None),
        ("https://orion:1026/v2", "orion", None, 1026, "/v2", "https"),
        ("my_service", "my_service", None, None, None, None),
    ],
)
def test_rules_parse(
    text: str, name: str | None, network: str | None, port: int | None, path: str | None, scheme: str | None
) -> None:
    rule = Rule.parse(text)
    assert rule.name == name
    assert rule.network == (ipaddress.ip_network(network) if network else None)
    assert (rule.port, rule.path, rule.scheme) == (port, path, scheme)
    assert Rule.parse(str(rule)) == rule


@pytest.mark.parametrize(
    "text", ["", "localhost/8", "10.0.0.0/33", "[::1", "[::1]:x", "host:99999", "host:0", "ftp://x", "a b", "[x]:1"]
)
def test_bad_rules_raise(text: str) -> None:
    with pytest.raises(ValueError):
        Rule.parse(text)


def test_rules_from_a_setting() -> None:
    rules = parse_rules("127.0.0.1:8668/v2/notify, localhost:4041\t10.0.0.0/8,,")
    assert [str(r) for r in rules] == ["127.0.0.1:8668/v2/notify", "localhost:4041", "10.0.0.0/8"]


def test_parse_target_reads_like_the_clients() -> None:
    target = parse_target("HTTPS://user:pw@0x7F000001:8443/a/b?c=d#frag")
    assert (target.scheme, target.host, target.port, target.path) == ("https", "127.0.0.1", 8443, "/a/b")
    assert target.address == ipaddress.ip_address("127.0.0.1")
    assert parse_target("mqtt://broker.example").port == 1883
    assert parse_target("http://Bücher.example/").host == "xn--bcher-kva.example"
    with pytest.raises(BadDestination):
        parse_target("http://[::1")


# --------------------------------------------------------------------------- forms, as a property

RANGES = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]


def _octal(n: int) -> str:
    return "0" + format(n, "o")


def textual_forms(address: ipaddress.IPv4Address) -> list[str]:
    """Every way the resolver (or a WHATWG parser) reads as ``address``."""
    n = int(address)
    a, b, c, d = address.packed
    return [
        str(address),
        str(n),
        hex(n),
        hex(n).upper().replace("X", "x"),
        "0X" + format(n, "X"),
        _octal(n),
        ".".join(hex(x) for x in (a, b, c, d)),
        ".".join(_octal(x) for x in (a, b, c, d)),
        f"{a}.{_octal(b)}.{hex(c)}.{d}",
        f"{a}.{b}.{c * 256 + d}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{hex(a)}.{hex((b << 16) | (c << 8) | d)}",
        f"{address}.",
        "".join(f"%{ord(ch):02X}" for ch in str(address)),
        str(address).translate({ord(ch): ord(ch) + 0xFEE0 for ch in "0123456789"}),  # fullwidth digits
        f"[::ffff:{address}]",
        f"[::ffff:{a << 8 | b:x}:{c << 8 | d:x}]",
        f"[64:ff9b::{address}]",
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(RANGES).flatmap(
        lambda net: st.integers(0, ipaddress.ip_network(net).num_addresses - 1).map(
            lambda i: ipaddress.ip_network(net)[i]
        )
    ),
    st.sampled_from(["http", "https", "mqtt"]),
    st.integers(1, 65535),
    st.sampled_from(["", "user@", "u:p@"]),
)
def test_every_textual_form_gets_the_same_decision(
    address: ipaddress.IPv4Address, scheme: str, port: int, userinfo: str
) -> None:
    policies = [
        Policy(),
        Policy([f"{address}:{port}"]),
        Policy([f"{address}:{port % 65535 + 1}"]),
        Policy([str(ipaddress.ip_network(f"{address}/16", strict=False))]),
        Policy(deny_private=False),
    ]
    for policy in policies:
        decisions = {
            form: policy.check_url(f"{scheme}://{userinfo}{form}:{port}/path") for form in textual_forms(address)
        }
        outcomes = {(d.allowed, d.kind) for d in decisions.values()}
        assert len(outcomes) == 1, decisions
    assert not Policy().check_url(f"{scheme}://{address}:{port}/").allowed


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 2**32 - 1).map(str),
            st.integers(0, 2**32 - 1).map(hex),
            st.integers(0, 2**32 - 1).map(_octal),
            st.integers(0, 300).map(str),
            st.text(alphabet="0123456789xX", min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=5,
    ).map(".".join)
)
def test_inet_aton_reads_every_address_the_system_reads(text: str) -> None:
    """The C library's ``inet_aton`` is the reference: whatever it reads as an address,
    we read as the same address (we may read more: "0x" as 0, as WHATWG does)."""
    try:
        expected = ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return
    assert inet_aton(text) == expected


# --------------------------------------------------------------------------- resolution


def stub(*answers: Iterable[str]):  # type: ignore[no-untyped-def]
    """A resolver giving each answer in turn (the last one again after that)."""
    calls: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return list(answers[min(len(calls), len(answers)) - 1])

    resolver.calls = calls  # type: ignore[attr-defined]
    return resolver


@pytest.mark.anyio
async def test_a_mix_of_public_and_private_answers_is_denied() -> None:
    resolver = stub(["93.184.216.34", "10.0.0.7"])
    decision = await Policy().check_resolved("http://mixed.example:8080/x", resolver)
    assert not decision.allowed and decision.kind == "private"
    assert decision.reason == (
        "destination mixed.example:8080 resolves to 10.0.0.7, which is a private address"
        " not in the allowed destinations (-notifAllowedHosts)"
    )
    assert resolver.calls == [("mixed.example", 8080)]  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_public_answers_are_allowed_with_their_addresses() -> None:
    resolver = stub(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"])
    decision = await Policy().check_resolved("https://example.org/", resolver)
    assert decision.allowed and decision.kind == "public"
    assert [str(a) for a in decision.addresses] == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


@pytest.mark.anyio
async def test_rebinding_is_caught_when_checking_again_before_sending() -> None:
    resolver = stub(["93.184.216.34"], ["127.0.0.1"])
    policy = Policy()
    assert (await policy.check_resolved("http://rebind.example/", resolver)).allowed
    later = await policy.check_resolved("http://rebind.example/", resolver)
    assert not later.allowed and later.kind == "loopback"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answers, kind",
    [
        (["169.254.169.254"], "metadata"),
        (["fe80::1%eth0"], "link-local"),
        (["::ffff:169.254.169.254"], "metadata"),
        (["0.0.0.0"], "unspecified"),
    ],
)
async def test_names_leading_to_forbidden_addresses_are_denied_even_when_named(answers: list[str], kind: str) -> None:
    decision = await Policy(["sneaky.example", "0.0.0.0/0"]).check_resolved("http://sneaky.example/", stub(answers))
    assert not decision.allowed and decision.kind == kind
    assert decision.reason.startswith("destination sneaky.example resolves to ")


@pytest.mark.anyio
async def test_rules_allow_names_by_name_or_by_resolved_address() -> None:
    resolver = stub(["10.0.0.7"])
    by_name = await Policy(["quantumleap:8668"]).check_resolved("http://quantumleap:8668/v2/notify", resolver)
    assert by_name.allowed and by_name.kind == "private" and [str(a) for a in by_name.addresses] == ["10.0.0.7"]
    by_block = await Policy(["10.0.0.0/8"]).check_resolved("http://quantumleap:8668/v2/notify", resolver)
    assert by_block.allowed
    wrong_port = await Policy(["quantumleap:8669"]).check_resolved("http://quantumleap:8668/v2/notify", resolver)
    assert not wrong_port.allowed


@pytest.mark.anyio
async def test_resolution_failures_are_denied() -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    decision = await Policy().check_resolved("http://nowhere.invalid/", failing)
    assert not decision.allowed and decision.kind == "unresolved" and "could not be resolved" in decision.reason
    # what a subscription records is curl's text, as Orion's lastFailureReason shows it
    # (Orion case 1960_failure_stats_in_db_and_notifications), whatever the resolver said
    for code, text in ((socket.EAI_NONAME, "Name or service not known"), (socket.EAI_AGAIN, "Temporary failure")):
        async def resolver(host: str, port: int, code: int = code, text: str = text) -> list[str]:
            raise socket.gaierror(code, text)

        gate = Gate(Policy(), resolver=resolver)
        assert (await gate.check("http://nohost:8997/notify")).failure == "Could not resolve hostname"
        with pytest.raises(Refused) as refused:
            await gate.connect_to("http", "nohost", 8997)
        assert refused.value.reason == "Could not resolve hostname" and refused.value.kind == "unresolved"
    empty = await Policy().check_resolved("http://empty.example/", stub([]))
    assert not empty.allowed and empty.kind == "unresolved"
    garbage = await Policy().check_resolved("http://garbage.example/", stub(["not an address"]))
    assert not garbage.allowed


@pytest.mark.anyio
async def test_literals_and_refusals_need_no_resolution() -> None:
    resolver = stub(["8.8.8.8"])
    literal = await Policy().check_resolved("http://8.8.4.4/", resolver)
    assert literal.allowed and [str(a) for a in literal.addresses] == ["8.8.4.4"]
    assert not (await Policy().check_resolved("http://0x7f000001/", resolver)).allowed
    assert not (await Policy().check_resolved("ftp://example.org/", resolver)).allowed
    assert resolver.calls == []  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_the_real_resolver_on_a_loopback_name() -> None:
    """localhost through getaddrinfo: denied, and allowed by a rule naming it with only
    loopback addresses to connect to."""
    assert not (await Policy().check_resolved("http://localhost:4041/")).allowed
    allowed = await Policy(["localhost:4041"]).check_resolved("http://localhost:4041/")
    assert allowed.allowed and allowed.addresses
    assert all(a.is_loopback for a in allowed.addresses)
    assert not (await Policy(["localhost:4041"]).check_resolved("http://localhost:4042/")).allowed


@pytest.mark.anyio
async def test_an_innocent_name_that_the_real_resolver_sends_to_loopback_is_denied() -> None:
    """The name is a stand-in; its addresses come from the real getaddrinfo."""

    async def real_loopback(host: str, port: int) -> list[str]:
        return await resolve("localhost", port)

    decision = await Policy().check_resolved("http://innocent.example:4041/", real_loopback)
    assert not decision.allowed and decision.kind == "loopback"
    assert " resolves to " in decision.reason
    assert any(x in decision.reason for x in ("127.0.0.1", "::1"))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["http://", "mqtt://", "https://u@", ""]), st.text(max_size=40))
def test_any_text_gets_a_decision_never_an_exception(prefix: str, rest: str) -> None:
    decision = Policy(["localhost:4041", "10.0.0.0/8"]).check_url(prefix + rest)
    assert isinstance(decision.allowed, bool) and decision.reason.startswith("destination")
