"""Privacy policies, the one transform engine, and where they meet the platform (issue 18).

Pure: ``policy`` reads the documents (``schema.json``) and picks the one that applies,
``transforms`` holds each transform as a function, ``engine`` applies a policy to the
shapes data leaves the platform in (entities, notifications, history answers, CSV rows),
``stored`` to the broker's internal entity form, ``keys`` and ``budget`` hold the state.
Wiring: ``release`` is one caller's way out (``ngsi/release.py``), ``feed`` follows the
policies at the identity manager, ``guard`` puts a release on requests, ``notifications``
on a subscription owner's notifications. docs/privacy.md is the guide.

``-guard security.privacy:broker_guard`` / ``history_guard`` name the guards.
"""

from __future__ import annotations

from typing import Any


def broker_guard(config: Any) -> Any:
    from .guard import broker_guard as make

    return make(config)


def history_guard(config: Any) -> Any:
    from .guard import history_guard as make

    return make(config)
