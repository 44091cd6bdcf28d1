"""Regular expressions that come from users: one place compiles them, with a linear-time engine.

idPattern, typePattern, ``q=attr~=...``, registration and subscription patterns and JEXL's
regex transforms all reach the platform as text from a client. They are compiled here,
once per distinct pattern (a bounded cache), so that the rules about them (which dialect,
what is refused, how long a match may take) are decided in one module.

Why RE2 and not ``re``: Python's ``re`` backtracks, so ``idPattern=^(a+)+$`` against a
25-character id takes seconds and doubles with every character, blocking the event loop
for every other client. RE2 (``google-re2``) runs in time linear in the text, whatever
the pattern, and bounds the memory of each compiled pattern (``_MAX_MEM``): a pattern
whose program does not fit is refused, and a search whose DFA outgrows it falls back to
RE2's (still linear) NFA instead of allocating more.

Decisions, with reasons:

* Patterns RE2 refuses are invalid, even when Python's ``re`` would accept them
  (backreferences ``\\1``, lookarounds ``(?=``/``(?<=``, atomic groups, possessive
  quantifiers, ``\\Z``, conditionals), and clients get Orion's "Invalid regex" 400 for them.
  Falling back to ``re`` for them would reopen exactly the catastrophic backtracking this
  module exists to close. They are the rare corner where Orion may accept more: its
  subscriptions use ``regcomp(REG_EXTENDED)`` (POSIX extended; glibc adds backreferences)
  and its queries MongoDB's PCRE (lookarounds too); none is needed for id/type patterns.
* RE2's Perl-like syntax is kept (not ``posix_syntax``): it covers POSIX extended
  expressions, bracket classes such as ``[[:alpha:]]`` (which ``re`` never understood), and
  the ``\\d``/``\\w``/``(?i)`` shorthands clients write for Orion's MongoDB (PCRE) queries.
* Semantics are RE2's: leftmost-first (as ``re``, JavaScript and PCRE), ``.`` does not
  match a newline (as ``re`` and PCRE); ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII (as
  PCRE without UCP and the C locale), where ``re`` made them Unicode; ``$`` matches only
  at the very end (as POSIX ``regexec``), where ``re`` also matched before a final
  newline; ``a{,3}`` is literal text (as PCRE), where ``re`` read ``{0,3}``. Matching is on
  code points, not bytes: ``.`` is one character of any script.
* Capture groups follow RE2 where ``re`` differs: a repeated group that can match the
  empty string (``(a|$)*``) keeps its last non-empty iteration, where ``re`` records a
  final empty one. Whole matches (group 0) are the same. ``finditer``/``sub``/``split``
  look for the next match one character further on after an empty match, where ``re``
  would first try a lower-priority non-empty one at the same place (``|a`` patterns).
* A yes/no search, the question every filter asks, runs without capture groups (RE2's
  DFA, the fast path); groups are computed only when a caller asks for one.
* Text holding lone surrogates (not encodable as UTF-8) is matched as if each were
  U+FFFD, which keeps every offset valid, instead of raising in the middle of a query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import re2  # type: ignore[import-untyped]
from re2 import _re2

CACHE_SIZE: Final = 512
"""Distinct patterns kept compiled: enough for every subscription's patterns and the
queries in flight. With ``_MAX_MEM`` it bounds what hostile patterns can make the process
hold: 512 patterns x 2 programs x 256 KiB at most (about 100 MiB measured for 512
DFA-exploding patterns run over 100 KB texts; a few MiB for ordinary ones)."""

_MAX_MEM: Final = 256 << 10
"""Bytes one compiled RE2 object (program and DFA cache) may use. Ordinary patterns stay
on the DFA well within it; a search whose DFA outgrows it continues on RE2's NFA (slower,
still linear); a pattern whose program alone does not fit (``\\p{L}{100}``: a Unicode class
repeated a hundred times) is refused as invalid. A bigger budget admits such patterns but
multiplies what the cache may hold."""

_Anchor = _re2.RE2.Anchor
_SURROGATE = re.compile("[\ud800-\udfff]")


def _options(*, capture: bool) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # an invalid client pattern is not worth a line on stderr
    options.max_mem = _MAX_MEM
    options.never_capture = not capture
    return options


def _utf8(text: str) -> bytes:
    """The UTF-8 bytes RE2 reads, with lone surrogates as U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _encodable(text).encode("utf-8")


def _encodable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD: one code point for one, so offsets
    in characters stay those of ``text``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


@dataclass(slots=True, eq=False, repr=False)
class Match:
    """A match, with ``re.Match``'s reading methods. Group 0 is known at once; the capture
    groups come from one capturing run anchored at the match start (at both ends for a
    fullmatch), made on first use: leftmost-first semantics make that run find the same
    match, and it sees the whole text, so ``^`` and ``\\b`` read the same context.

    Made by :class:`Pattern` only. The offsets are private: ``start()`` and ``end()`` are
    ``re.Match``'s methods."""

    re: Pattern
    string: str
    _start: int
    _end: int
    _captured: Any = None  # the capturing run's match, once made
    _full: bool = False  # a fullmatch: the capturing run is anchored at both ends

    def _groups_match(self) -> Any:
        if self._captured is None:
            text = _encodable(self.string)
            capturing = self.re._capturing
            self._captured = capturing.fullmatch(text) if self._full else capturing.match(text, self._start)
        return self._captured

    def span(self, group: int | str = 0) -> tuple[int, int]:
        """Character offsets of ``group``; (-1, -1) when it took no part in the match."""
        if group == 0:
            return self._start, self._end
        index = self.re.groupindex.get(group, -1) if isinstance(group, str) else group
        if not 0 < index <= self.re.groups:
            raise IndexError("no such group")
        start, end = self._groups_match().span(index)
        return start, end

    def start(self, group: int | str = 0) -> int:
        return self.span(group)[0]

    def end(self, group: int | str = 0) -> int:
        return self.span(group)[1]

    def _text(self, group: int | str, default: Any = None) -> Any:
        start, end = self.span(group)
        return default if start < 0 else self.string[start:end]

    def group(self, *groups: int | str) -> Any:
        if len(groups) <= 1:
            return self._text(groups[0] if groups else 0)
        return tuple(self._text(g) for g in groups)

    def __getitem__(self, group: int | str) -> Any:
        return self._text(group)

    def groups(self, default: Any = None) -> tuple[Any, ...]:
        return tuple(self._text(g, default) for g in range(1, self.re.groups + 1))

    def groupdict(self, default: Any = None) -> dict[str, Any]:
        return {name: self._text(g, default) for name, g in self.re.groupindex.items()}

    def expand(self, template: str) -> str:
        """``template`` with ``\\1``/``\\g<name>`` references filled in, as ``re`` does."""
        return str(self._groups_match().expand(template))

    def __repr__(self) -> str:
        return f"<ngsi.regex.Match span={self.span()!r} match={self.group()!r}>"


class Pattern:
    """A compiled user pattern with the ``re.Pattern`` methods callers use; every one runs
    in time linear in the text."""

    __slots__ = ("_bare", "_capturing", "pattern")

    def __init__(self, pattern: str, bare: Any, capturing: Any) -> None:
        self.pattern = pattern
        self._bare = bare  # low-level RE2 without captures: yes/no and group 0
        self._capturing = capturing  # google-re2's re-like object, with captures

    @property
    def groups(self) -> int:
        return int(self._capturing.groups)

    @property
    def groupindex(self) -> dict[str, int]:
        return dict(self._capturing.groupindex)

    def _find(self, anchor: Any, string: str) -> Match | None:
        data = _utf8(string)
        start, end = self._bare.Match(anchor, data, 0, len(data))[0]
        if start < 0:
            return None
        if not string.isascii():  # RE2 counts bytes of UTF-8, callers count characters
            char_start = _re2.BytesToCharLen(data, 0, start)
            end = char_start + _re2.BytesToCharLen(data, start, end)
            start = char_start
        return Match(self, string, start, end, _full=anchor == _Anchor.ANCHOR_BOTH)

    def search(self, string: str) -> Match | None:
        """The leftmost match anywhere in ``string`` (Orion's patterns are unanchored)."""
        return self._find(_Anchor.UNANCHORED, string)

    def match(self, string: str) -> Match | None:
        return self._find(_Anchor.ANCHOR_START, string)

    def fullmatch(self, string: str) -> Match | None:
        return self._find(_Anchor.ANCHOR_BOTH, string)

    def finditer(self, string: str) -> Iterator[Match]:
        """Non-overlapping matches left to right. An empty match right after a previous
        match counts, as in ``re`` since Python 3.7; after an empty match the next one is
        looked for one character further on (``re`` would first try a lower-priority,
        non-empty match at the same place: only ``(|a)``-like patterns see the difference)."""
        previous: tuple[int, int] | None = None
        for m in self._capturing.finditer(_encodable(string)):
            span = m.span()
            if span == previous:  # google-re2 reports an empty match found ahead twice
                continue
            previous = span
            yield Match(self, string, span[0], span[1], m)

    def findall(self, string: str) -> list[Any]:
        """As ``re``: whole matches without groups, the group with one, tuples with more."""
        n = self.groups
        if n == 0:
            return [m.group() for m in self.finditer(string)]
        if n == 1:
            return [m.groups("")[0] for m in self.finditer(string)]
        return [m.groups("") for m in self.finditer(string)]

    def subn(self, repl: str | Callable[[Match], str], string: str, count: int = 0) -> tuple[str, int]:
        pieces: list[str] = []
        last = n = 0
        for m in self.finditer(string):
            if count and n == count:
                break
            pieces.append(string[last : m.start()])
            pieces.append(repl(m) if callable(repl) else m.expand(repl))
            last = m.end()
            n += 1
        pieces.append(string[last:])
        return "".join(pieces), n

    def sub(self, repl: str | Callable[[Match], str], string: str, count: int = 0) -> str:
        return self.subn(repl, string, count)[0]

    def split(self, string: str, maxsplit: int = 0) -> list[str | None]:
        pieces: list[str | None] = []
        last = 0
        for n, m in enumerate(self.finditer(string)):
            if maxsplit and n == maxsplit:
                break
            pieces.append(string[last : m.start()])
            pieces.extend(m.groups())
            last = m.end()
        pieces.append(string[last:])
        return pieces

    def __repr__(self) -> str:
        return f"ngsi.regex.compile_pattern({self.pattern!r})"


@lru_cache(maxsize=CACHE_SIZE)
def compile_pattern(pattern: str) -> Pattern | None:
    """The compiled pattern, or None when RE2 does not accept it (see the module docstring
    for what that refuses and why)."""
    try:
        capturing = re2.compile(pattern, _options(capture=True))
        bare = _re2.RE2(pattern.encode("utf-8"), _options(capture=False))
    except (re2.error, UnicodeEncodeError, TypeError, ValueError):
        return None
    if not bare.ok():
        return None
    return Pattern(pattern, bare, capturing)


def valid(pattern: str) -> bool:
    return compile_pattern(pattern) is not None


def search(pattern: str, text: str) -> bool:
    """Does the pattern match anywhere in ``text`` (Orion's patterns are unanchored)? An
    invalid pattern matches nothing."""
    compiled = compile_pattern(pattern)
    return compiled is not None and compiled.search(text) is not None
