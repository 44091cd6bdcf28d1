"""Tests of ngsi.regex: user patterns compiled by RE2, linear in the text.

The ReDoS cases would take Python's backtracking ``re`` longer than the age of the
universe on these inputs; here they must finish at once. The property tests check that,
for the ordinary constructs clients write, RE2 finds exactly the matches ``re`` found.
"""

from __future__ import annotations

import re
import time
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi.regex import CACHE_SIZE, Match, Pattern, compile_pattern, search, valid

# --------------------------------------------------------------------------- ReDoS

REDOS = ["^(a+)+$", "(a|aa)+$", "(.*a){20}", "(x+x+)+y", "^(a|a?)+$", "(\\w+\\s?)*!"]


def test_catastrophic_patterns_finish_in_linear_time() -> None:
    """A safety bound, not a benchmark: backtracking would need years here."""
    texts = ["a" * 10_000, "a" * 9_999 + "!", "a" * 9_999 + "b", "x" * 10_000]
    started = time.perf_counter()
    for pattern in REDOS:
        compiled = compile_pattern(pattern)
        assert compiled is not None, pattern
        for text in texts:
            compiled.search(text)
            compiled.fullmatch(text)
    assert time.perf_counter() - started < 0.5


def test_catastrophic_patterns_with_captures_finish_too() -> None:
    """sub/finditer track capture groups (another RE2 engine): still linear."""
    text = "a" * 10_000
    started = time.perf_counter()
    for pattern in ["^(a+)+$", "(a|aa)+$", "(.*a){20}"]:
        compiled = compile_pattern(pattern)
        assert compiled is not None
        assert len(list(compiled.finditer(text))) == 1
        assert compiled.sub("", text) == ""
        assert compiled.search(text).group(1)  # type: ignore[union-attr]
    assert time.perf_counter() - started < 2.0


def test_catastrophic_results_are_right() -> None:
    assert search("^(a+)+$", "a" * 10_000)
    assert not search("^(a+)+$", "a" * 9_999 + "!")
    assert search("(.*a){20}", "a" * 20)
    assert not search("(.*a){20}", "a" * 19)


# --------------------------------------------------------------------------- invalid


@pytest.mark.parametrize(
    "pattern",
    [
        "[",
        "(",
        "a)",
        "a**",
        "*a",
        "a{2,1}",
        "x{1001}",  # RE2's repetition limit
        "\\pL{1000}",  # a program over the memory budget
        "(a)\\1",  # backreference: needs backtracking
        "(?P<n>a)(?P=n)",
        "(?=a)",  # lookarounds
        "(?!a)b",
        "(?<=a)b",
        "(?<!a)b",
        "(?>a+)",  # atomic group
        "a*+",  # possessive
        "a\\Z",  # Python's end-of-text, PCRE's before-final-newline: ambiguous
        "(a)?(?(1)b|c)",  # conditional
        "\ud800",  # not encodable
    ],
)
def test_invalid_patterns_are_none(pattern: str) -> None:
    assert compile_pattern(pattern) is None
    assert not valid(pattern)
    assert not search(pattern, "anything a b")


def test_refusing_writes_nothing_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    """RE2 logs parse errors by default; a client's bad pattern must not fill the log."""
    assert compile_pattern("(?=refused") is None
    assert compile_pattern("[also refused") is None
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "pattern, text",
    [
        ("^Room[0-9]+$", "Room12"),
        ("[[:alpha:]]+[[:digit:]]", "ab1"),  # POSIX bracket classes (Orion's regcomp)
        ("\\d{2}", "x12"),
        ("(?i)room", "ROOM"),
        ("a|b|", "zzz"),
        ("", "anything"),
        ("(?P<name>a)", "a"),
        ("\\.", "a.b"),
    ],
)
def test_valid_patterns_match(pattern: str, text: str) -> None:
    assert valid(pattern)
    assert search(pattern, text)


def test_documented_differences_from_python_re() -> None:
    """Where RE2 (and Orion's engines) disagree with ``re``, RE2's reading is kept."""
    assert not search("a$", "a\n")  # $ is the very end, as POSIX regexec
    assert search("^a{,3}$", "a{,3}")  # literal braces, as PCRE
    assert not search("^\\w+$", "café")  # ASCII shorthands, as PCRE without UCP
    assert not search("a.b", "a\nb")  # '.' does not cross lines, as re and PCRE


# --------------------------------------------------------------------------- unicode


def test_unicode_text_is_matched_by_code_point() -> None:
    assert search("^.{4}$", "café")
    assert search("^.$", "😀")
    assert search("^[à-ü]+$", "éèü")
    assert search("(?i)^ÉTÉ$", "été")
    compiled = compile_pattern("é+")
    assert compiled is not None
    m = compiled.search("caféé!")
    assert m is not None and m.span() == (3, 5) and m.group() == "éé"
    assert [x.span() for x in compiled.finditer("éaéé😀é")] == [(0, 1), (2, 4), (5, 6)]
    assert compiled.sub("E", "éaéé😀é") == "EaE😀E"


def test_lone_surrogates_do_not_raise() -> None:
    compiled = compile_pattern("x")
    assert compiled is not None
    m = compiled.search("\ud800x")
    assert m is not None and m.span() == (1, 2)
    assert not search("^x", "\udfffx")


# --------------------------------------------------------------------------- the re-like API


def test_match_object_reads_like_re() -> None:
    compiled = compile_pattern("(?P<word>[a-z]+)-(\\d+)?")
    assert isinstance(compiled, Pattern)
    assert compiled.groups == 2 and compiled.groupindex == {"word": 1}
    m = compiled.search("## abc-12 ##")
    assert isinstance(m, Match)
    assert m.span() == (3, 9) and m.start() == 3 and m.end() == 9
    assert m.group(0) == m[0] == "abc-12"
    assert m.group(1) == m["word"] == "abc" and m.span(2) == (7, 9)
    assert m.group(1, 2) == ("abc", "12")
    assert m.groups() == ("abc", "12") and m.groupdict() == {"word": "abc"}
    assert m.expand("\\2:\\g<word>") == "12:abc"
    assert compiled.search("abc-").groups("none") == ("abc", "none")  # type: ignore[union-attr]
    assert compiled.match("## abc-1") is None
    assert compiled.fullmatch("abc-1") is not None
    assert compiled.findall("a-1 b- c-3") == [("a", "1"), ("b", ""), ("c", "3")]
    assert compiled.sub("\\2\\1", "a-1 b-2") == "1a 2b"
    assert compiled.subn(lambda m: m.group(1).upper(), "a-1 b-2 c-3", count=2) == ("A B c-3", 2)
    assert compiled.split("x a-1 y") == ["x ", "a", "1", " y"]


def test_groups_are_found_with_the_right_context() -> None:
    """Capture groups come from a second run at the match start: ``^`` and ``\\b`` there
    must see the text before it, as in the first run."""
    compiled = compile_pattern("\\b(b)|(b)")
    assert compiled is not None
    m = compiled.search("ab")
    assert m is not None and m.span() == (1, 2) and m.groups() == (None, "b")


def test_cache_is_bounded() -> None:
    assert compile_pattern.cache_info().maxsize == CACHE_SIZE  # type: ignore[attr-defined]
    assert compile_pattern("^cached$") is compile_pattern("^cached$")


# --------------------------------------------------------------------------- agreement with re

ALPHABET = "abé.ü"


def _atoms() -> st.SearchStrategy[str]:
    literal = st.sampled_from(["a", "b", "é", "\\.", "ü"])
    klass = st.sampled_from(["[ab]", "[^b]", "[a-c]", "[é-ü]", "[.]", "[^é.]"])
    return st.one_of(literal, klass, st.just("."))


_QUANTIFIERS = st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,2}", "{0,3}", "*?", "+?", "??"])

Generated = tuple[str, bool]
"""A pattern, and whether its matches must agree with ``re``'s beyond their existence: not
when a repeated group can match the empty string (``(a|$)*``), where ``re`` records a last,
empty iteration and RE2 does not, which changes the groups and, when the loop is nested in
another (hypothesis found ``(a?(?:(a)*[^b]*?|x)*)*``), where the whole match ends too."""


def _group(body: Generated, capture: bool) -> Generated:
    return (f"({body[0]})" if capture else f"(?:{body[0]})"), body[1]


def _quantify(item: Generated, quantifier: str) -> Generated:
    text, comparable = item
    if quantifier and text.startswith("(") and re.fullmatch(text, "") is not None:
        comparable = False
    return text + quantifier, comparable


def _join(parts: list[Generated], sep: str) -> Generated:
    return sep.join(p[0] for p in parts), all(p[1] for p in parts)


def _regexes() -> st.SearchStrategy[Generated]:
    """Literals, classes, '.', quantifiers, groups, anchors and alternation, nested."""
    atoms = _atoms().map(lambda a: (a, True))

    def extend(inner: st.SearchStrategy[Generated]) -> st.SearchStrategy[Generated]:
        group = st.builds(_group, inner, st.booleans())
        quantified = st.builds(_quantify, st.one_of(atoms, group), _QUANTIFIERS)
        piece = st.one_of(quantified, st.sampled_from([("^", True), ("$", True)]))
        concat = st.lists(piece, min_size=1, max_size=4).map(lambda ps: _join(ps, ""))
        return st.lists(concat, min_size=1, max_size=3).map(lambda cs: _join(cs, "|"))

    return st.recursive(atoms, extend, max_leaves=8)


def _reference_spans(expected: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """The documented finditer rule, computed with ``re``: search on from the end of each
    match, one character further after an empty one."""
    spans, pos = [], 0
    while pos <= len(text) and (m := expected.search(text, pos)) is not None:
        spans.append(m.span())
        pos = m.end() + (m.end() == m.start())
    return spans


def _retries_after_empty(expected: re.Pattern[str], text: str) -> bool:
    """Did ``re`` take a non-empty match at the place of an empty one (the one documented
    difference: ``re`` backtracks into a lower-priority alternative there)?"""
    spans = [m.span() for m in expected.finditer(text)]
    return any(a[0] == a[1] == b[0] for a, b in pairwise(spans))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_regexes(), st.lists(st.text(alphabet=ALPHABET, max_size=12), min_size=1, max_size=4))
def test_re2_agrees_with_re_on_simple_patterns(generated: Generated, texts: list[str]) -> None:
    pattern, groups_agree = generated
    expected = re.compile(pattern)
    compiled = compile_pattern(pattern)
    assert compiled is not None, pattern
    for text in texts:
        ours, theirs = compiled.search(text), expected.search(text)
        assert (ours is None) == (theirs is None), (pattern, text)
        ours_full, theirs_full = compiled.fullmatch(text), expected.fullmatch(text)
        assert (ours_full is None) == (theirs_full is None), (pattern, text)
        if not groups_agree:
            continue  # the documented difference: whether, and that is all
        if ours is not None and theirs is not None:
            assert ours.span() == theirs.span(), (pattern, text)
        spans = [m.span() for m in compiled.finditer(text)]
        assert spans == _reference_spans(expected, text), (pattern, text)
        if not _retries_after_empty(expected, text):
            assert spans == [m.span() for m in expected.finditer(text)], (pattern, text)
            wrap = lambda m: "<" + m.group() + ">"
            assert compiled.sub(wrap, text) == expected.sub(wrap, text), (pattern, text)
            assert compiled.split(text) == expected.split(text), (pattern, text)
            assert compiled.findall(text) == expected.findall(text), (pattern, text)
        if ours_full is not None and theirs_full is not None:
            assert ours_full.groups() == theirs_full.groups(), (pattern, text)
        if groups_agree and ours is not None and theirs is not None:
            assert ours.groups() == theirs.groups(), (pattern, text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20), st.text(max_size=30))
def test_any_text_as_pattern_never_raises(pattern: str, text: str) -> None:
    compiled = compile_pattern(pattern)
    if compiled is not None:
        m = compiled.search(text)
        if m is not None:
            assert 0 <= m.start() <= m.end() <= len(text)
            assert m.group() == text[m.start() : m.end()]
