"""The newest NGSI policy set a process has read, shared by its PEP guard and its
notification filter.

The broker loads both from its options (``-guard security.pep:broker_guard``,
``-notifFilter security.pep.notifications:notification_filter``), each with its own
connection to the identity manager. The guard confirms the policy version before it uses
a decision (``Freshness``); the filter cannot wait on the notifier's path, so it follows
the version in the background. Without a shared board, a permission granted a moment
ago admits a user's subscription (the guard read the new set) while the filter still
hides the notified entities from that user (it had not yet): the first notifications of
a fresh grant were lost. With it, whichever of the two read a set last, the other uses it
too; a set of an older version never replaces a newer one.

One board per identity manager and application in a process (``board_for``): the two
components are composed separately, and share nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from security.authz.policy import PolicySet


@dataclass
class PolicyBoard:
    version: int | None = None  # None: the identity manager has no version (Keyrock)
    policy_set: PolicySet | None = None

    def publish(self, version: int | None, policy_set: PolicySet) -> None:
        """A set just read: kept unless the board already holds a newer version."""
        if self.policy_set is None or version is None or self.version is None or version >= self.version:
            self.version, self.policy_set = version, policy_set


_BOARDS: dict[tuple[str, str], PolicyBoard] = {}


def board_for(idm_url: str, app_id: str) -> PolicyBoard:
    """The process's board for this identity manager and application."""
    return _BOARDS.setdefault((idm_url.rstrip("/"), app_id), PolicyBoard())
