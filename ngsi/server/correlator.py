"""New ``Fiware-Correlator`` values, for requests that arrive without one."""

from __future__ import annotations

import itertools
import os


class _Correlators:
    """UUID-shaped (version 4 layout): a random per-process prefix and a counter. Unique as
    UUID4s are (62 random bits per process, then a sequence), at a tenth of ``uuid4()``'s
    cost; a forked child draws its own prefix."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        h = os.urandom(8).hex()
        self.prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[3], 16) & 3]}{h[1:4]}-"
        self.counter = itertools.count()

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFF:012x}"


new_correlator = _Correlators().new


def first_values(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a dict of lowercase names to the first value given (Orion's rule)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers
