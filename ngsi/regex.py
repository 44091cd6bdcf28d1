"""Regular expressions that come from users: one place compiles them.

idPattern, typePattern, ``q=attr~=...``, registration and subscription patterns and JEXL's
regex transforms all reach the broker as text from a client. They are compiled here,
once per distinct pattern (a bounded cache), so that the rules about them (which dialect,
what is refused, how long a match may take) are decided in one module.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

Pattern = re.Pattern[str]


@lru_cache(maxsize=2048)
def compile_pattern(pattern: str) -> Pattern | None:
    """The compiled pattern, or None when it is not a valid regular expression."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FutureWarning on nested sets and the like
            return re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return None


def valid(pattern: str) -> bool:
    return compile_pattern(pattern) is not None


def search(pattern: str, text: str) -> bool:
    """Does the pattern match anywhere in ``text`` (Orion's patterns are unanchored)? An
    invalid pattern matches nothing."""
    compiled = compile_pattern(pattern)
    return compiled is not None and compiled.search(text) is not None
