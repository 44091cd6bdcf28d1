"""The policy board (security/pep/policyboard.py): the PEP guard and the notification
filter of one process see the newest policy set either of them read, never an older one."""

from __future__ import annotations

from security.authz.policy import parse_policy_set
from security.pep.notifications import NotificationFilter
from security.pep.policyboard import PolicyBoard, board_for
from security.pep.settings import Settings


def _set(tenant: str) -> object:
    return parse_policy_set({"policies": [{"id": tenant, "subject": {"users": ["u1"]}, "actions": ["read"],
                                           "tenant": tenant}]})


def test_a_newer_version_wins_an_older_never_replaces_it() -> None:
    board = PolicyBoard()
    old, new = _set("a"), _set("b")
    board.publish(3, new)  # type: ignore[arg-type]
    board.publish(2, old)  # type: ignore[arg-type]  # a slow fetch of an older state, finishing last
    assert board.version == 3 and board.policy_set is new
    board.publish(None, old)  # type: ignore[arg-type]  # an identity manager without versions: the latest read
    assert board.policy_set is old


def test_the_filter_uses_what_the_guard_published() -> None:
    settings = Settings(idm_url="http://idm.test:3005/", app_id="app1")
    found = NotificationFilter(settings)
    found._task = object()  # type: ignore[assignment]  # not following: only the guard's publication counts
    owner = {"user_id": "u1"}
    entity = {"id": "E", "type": "T", "t": {"type": "Number", "value": 1, "metadata": {}}}
    assert found(owner, "coop", entity) is None  # nothing read yet: fails closed
    board_for("http://idm.test:3005", "app1").publish(7, _set("coop"))  # type: ignore[arg-type]  # the guard's read
    seen = found(owner, "coop", entity)
    assert seen is not None and seen["id"] == "E"
    assert found(owner, "other", entity) is None
