"""The HMAC keys pseudonyms are made with: a ring of keys with ids, one of them current.

Rotating adds a key and makes it current: from then on every pseudonym is new, so what a
consumer collected before cannot be linked to what it gets after (the research note's
"rotating pseudonyms over time limits linkage"). Old keys stay in the ring, retired, so
that the platform (which holds the keys) can still tell which id a past pseudonym was;
``prune`` forgets them when that is no longer wanted. The ring is a value: ``rotate`` and
``prune`` return a new one, and ``to_dict``/``from_dict`` give the JSON the identity
store keeps.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

KEY_BYTES = 32  # HMAC-SHA256's block-sized key is more than enough; 32 is its output size


class KeyRingError(ValueError):
    """A serialized key ring that cannot be read (the message says which part)."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Keys by id, in the order they were made; ``current`` names the one in use."""

    keys: Mapping[str, bytes] = field(repr=False)
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise KeyRingError(f"current key {self.current!r} is not in the ring")
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    @classmethod
    def generate(cls, secret: bytes | None = None) -> KeyRing:
        """A ring with one key, ``k1`` (random unless ``secret`` is given, as tests do)."""
        return cls({"k1": secret if secret is not None else secrets.token_bytes(KEY_BYTES)}, "k1")

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current]

    def rotate(self, secret: bytes | None = None) -> KeyRing:
        """A ring whose current key is a new one, ``k<n+1>``; the old keys kept, retired."""
        number = 1 + max((int(k[1:]) for k in self.keys if k[1:].isdigit() and k[:1] == "k"), default=0)
        key_id = f"k{number}"
        new = secret if secret is not None else secrets.token_bytes(KEY_BYTES)
        return KeyRing({**self.keys, key_id: new}, key_id)

    def prune(self) -> KeyRing:
        """The ring without its retired keys."""
        return KeyRing({self.current: self.current_key}, self.current)

    def to_dict(self) -> dict[str, Any]:
        """``{"current": id, "keys": {id: base64url}}``: JSON, to be stored as a secret."""
        return {"current": self.current,
                "keys": {k: base64.urlsafe_b64encode(v).decode() for k, v in self.keys.items()}}

    @classmethod
    def from_dict(cls, doc: Any) -> KeyRing:
        if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), Mapping) or not doc["keys"]:
            raise KeyRingError("a key ring is {'current': id, 'keys': {id: base64url}}")
        keys: dict[str, bytes] = {}
        for key_id, text in doc["keys"].items():
            try:
                keys[str(key_id)] = base64.urlsafe_b64decode(str(text).encode())
            except (binascii.Error, ValueError):
                raise KeyRingError(f"keys/{key_id}: not base64url") from None
            if not keys[str(key_id)]:
                raise KeyRingError(f"keys/{key_id}: an empty key")
        return cls(keys, str(doc.get("current")))
