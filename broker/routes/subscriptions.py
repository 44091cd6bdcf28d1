"""/v2/subscriptions and /v2/subscriptions/{id}: create, list, get, update, delete.

Subscriptions belong to the tenant of the request and remember the service path of the
request that created (or last updated) them: listing and getting with a
Fiware-ServicePath header show only those of that path (1693, 3945); without the
header every subscription of the tenant is shown.
"""

from __future__ import annotations

import time

from starlette.responses import Response

from ngsi.servicepath import parse_subscription_path

from .. import listing
from ..http import Call, Resource, created, json_response, no_content
from ..subscriptions.model import check_sub_id, owner_of, parse_subscription, render_subscription
from ..subscriptions.registry import SubscriptionRegistry
from .params import check_params

ALL_PATHS = "/#"


def _registry(call: Call) -> SubscriptionRegistry:
    registry: SubscriptionRegistry = call.state.subscriptions
    return registry


def _service_path(call: Call) -> str | None:
    """The one service path of the request as written ("/a", "/a/#"), None without header."""
    return parse_subscription_path(call.ctx.service_path)


async def list_subscriptions(call: Call) -> Response:
    check_params(call)
    limit = listing.parse_limit(call.query.get("limit"))
    offset = listing.parse_offset(call.query.get("offset"))
    subs = _registry(call).select(call.tenant, _service_path(call))
    now = time.time()
    body = [render_subscription(sub, now) for sub in subs[offset : offset + limit]]
    headers = {"Fiware-Total-Count": str(len(subs))} if "count" in call.options else None
    return json_response(body, headers=headers)


async def create_subscription(call: Call) -> Response:
    check_params(call)
    path = _service_path(call)
    parsed = parse_subscription(call.json())
    owner = owner_of(call.ctx.identity)
    if owner is not None:  # notifications show it only what it may read (Notifier.visibility)
        parsed["_owner"] = owner
    sub = await _registry(call).create(call.tenant, path or ALL_PATHS, parsed)
    return created(f"/v2/subscriptions/{sub['id']}")


async def get_subscription(call: Call) -> Response:
    check_params(call)
    sub_id = call.path_params["id"]
    check_sub_id(sub_id)
    sub = _registry(call).find(call.tenant, sub_id, _service_path(call))
    return json_response(render_subscription(sub, time.time()))


async def update_subscription(call: Call) -> Response:
    check_params(call)
    sub_id = call.path_params["id"]
    path = _service_path(call)
    patch = parse_subscription(call.json(), update=True)
    check_sub_id(sub_id)
    await _registry(call).update(call.tenant, sub_id, patch, path or ALL_PATHS)
    return no_content()


async def delete_subscription(call: Call) -> Response:
    check_params(call)
    sub_id = call.path_params["id"]
    check_sub_id(sub_id)
    await _registry(call).delete(call.tenant, sub_id)
    return no_content()


SUBSCRIPTIONS = Resource("POST, GET", GET=list_subscriptions, POST=create_subscription)
SUBSCRIPTION = Resource("GET, DELETE, PATCH", GET=get_subscription, DELETE=delete_subscription, PATCH=update_subscription)
