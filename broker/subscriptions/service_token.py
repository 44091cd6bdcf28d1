"""The broker's own token on its notifications to the platform's services behind a PEP.

A service of the platform that takes notifications behind a PEP (the rules service's
``/notices``) must know a notification comes from the broker. Orion's answer is to pass on
the ``X-Auth-Token`` of the request that caused the change; but the writer's token may not
allow what the receiver's PEP asks, or be absent (the IoT agent sends ``Authorization:
Bearer``), and handing a user's token to every subscriber is a leak of its own. A header
kept in the subscription (a shared signature) is readable by whoever may list the
subscriptions, so it proves nothing.

Here the broker proves who it is: notifications to the URLs of ``-notifTokenFor`` carry
the token of the broker's service account (the ``-feedTokenURL`` account, fetched and
renewed by ``ngsi.client.credentials``), in place of any ``X-Auth-Token`` or
``Authorization`` the notification had. Only notifications whose content the broker makes
(``http``, not ``httpCustom``): a subscriber who chose the URL, headers and payload of an
``httpCustom`` notification could otherwise have the broker vouch for words of theirs.

A URL is covered by a prefix when it starts with it at a boundary of the URL
(``http://h:9090/notices`` covers ``.../notices`` and ``.../notices?x``, not
``http://h:90901/...`` nor ``.../noticesX``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ngsi.client.credentials import Credentials

REPLACED = ("x-auth-token", "authorization")  # the caller's credentials, never passed on to a covered URL


def covered(url: str, prefixes: Sequence[str]) -> bool:
    """Whether ``url`` is one of ``prefixes`` or below one, at a boundary of the URL."""
    for prefix in prefixes:
        if url.startswith(prefix) and (
            len(url) == len(prefix) or prefix.endswith("/") or url[len(prefix)] in "/?#"
        ):
            return True
    return False


@dataclass(frozen=True)
class ServiceToken:
    """``-notifTokenFor``: the URL prefixes and the broker's token source."""

    prefixes: tuple[str, ...]
    credentials: Credentials

    def wanted(self, url: str, custom: bool) -> bool:
        return not custom and covered(url, self.prefixes)

    async def headers(self, headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """``headers`` with the broker's token in place of the caller's credentials."""
        kept = [(name, value) for name, value in headers if name.lower() not in REPLACED]
        return kept + await self.credentials.headers()
