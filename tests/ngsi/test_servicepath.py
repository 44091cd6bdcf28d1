"""ngsi.servicepath: Fiware-Service and Fiware-ServicePath rules, from Orion's functional test cases."""

from __future__ import annotations

import pytest

from ngsi.errors import BadRequest
from ngsi.servicepath import parse_scopes, parse_tenant, parse_write_path


def test_tenant_is_folded_to_lowercase() -> None:
    assert parse_tenant("SmartCity_1") == "smartcity_1"
    assert parse_tenant(None) == ""


@pytest.mark.parametrize(
    ("header", "description"),
    [
        ("x" * 51, "bad length - a tenant name can be max 50 characters long"),  # 1403_length_of_tenant
        ("bad-tenant", "bad character in tenant name - only underscore and alphanumeric characters are allowed"),
    ],
)
def test_bad_tenants(header: str, description: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_tenant(header)
    assert info.value.description == description


def test_no_header_reads_every_path() -> None:
    assert parse_scopes(None) == (("/", True),)
    assert parse_write_path(None) == "/"


def test_one_trailing_slash_is_dropped() -> None:
    # 4495_servicepath_levels_with_zero_length: '/Level_1/Level_2/' is '/Level_1/Level_2'
    assert parse_scopes("/Level_1/Level_2/") == (("/Level_1/Level_2", False),)
    assert parse_scopes("/Level_1/, /Level_2/") == (("/Level_1", False), ("/Level_2", False))
    assert parse_write_path("/Level_1/") == "/Level_1"
    assert parse_scopes("/") == (("/", False),)
    assert parse_scopes("/Madrid/#") == (("/Madrid", True),)


@pytest.mark.parametrize("header", ["//Level_1", "///Level_1///Level_2//", "/Level_1///Level_2", "/Level_1/Level_2//"])
def test_empty_levels_are_refused(header: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_scopes(header)
    assert info.value.description == "empty component in ServicePath"


@pytest.mark.parametrize(
    ("header", "description"),
    [
        ("/service.sr", "a component of ServicePath contains an illegal character"),  # 1280
        ("miservice", "Only /absolute/ Service Paths allowed [a service path must begin with /]"),
        ("/" + "a" * 51, "component-name too long in ServicePath"),
        ("/a/b/c/d/e/f/g/h/i/j/k", "too many components in ServicePath"),
        (",".join(["/a"] * 11), "too many service paths - a maximum of ten service paths is allowed"),
    ],
)
def test_bad_paths(header: str, description: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_scopes(header)
    assert info.value.description == description


def test_writes_take_one_plain_path() -> None:
    with pytest.raises(BadRequest):
        parse_write_path("/a,/b")
    with pytest.raises(BadRequest):
        parse_write_path("/a/#")
