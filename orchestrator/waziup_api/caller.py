"""Who a request (HTTP or MQTT) acts for: a platform user, or the guest.

The WAZIUP API never refuses a request for lack of a token: a missing token, or one that
does not verify, is served as ``guest`` (contract §2), who may create things and use
public devices, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    username: str
    admin: bool = False
    user_id: str = ""  # the identity manager's id ("" for the guest)

    @property
    def guest(self) -> bool:
        return self.username == GUEST.username and not self.user_id


GUEST = Caller("guest")
