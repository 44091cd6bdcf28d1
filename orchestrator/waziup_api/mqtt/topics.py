"""The subscription index: which sessions subscribe to a topic, without scanning every filter.

Why a trie: every PUBLISH (from a device, or from the HTTP API) is routed, and the number
of subscriptions grows with the dashboards and gateways; walking the topic's levels
costs the depth of the topic, not the number of filters. Filters are assumed valid
(:func:`ngsi.client.mqtt.packets.topic_filter_problem` is checked before they get here).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    subscribers: dict[str, int] = field(default_factory=dict)  # client id -> granted QoS


class SubscriptionIndex:
    """Topic filter -> {client id: granted QoS}, matched per topic with ``+`` and ``#``."""

    def __init__(self) -> None:
        self._root = _Node()

    def add(self, topic_filter: str, client_id: str, qos: int) -> None:
        """Subscribe (or re-subscribe, replacing the QoS) ``client_id`` to ``topic_filter``."""
        node = self._root
        for level in topic_filter.split("/"):
            node = node.children.setdefault(level, _Node())
        node.subscribers[client_id] = qos

    def remove(self, topic_filter: str, client_id: str) -> None:
        """Drop one subscription, pruning branches left empty so the trie does not only grow."""
        path = [self._root]
        for level in topic_filter.split("/"):
            child = path[-1].children.get(level)
            if child is None:
                return
            path.append(child)
        path[-1].subscribers.pop(client_id, None)
        levels = topic_filter.split("/")
        for i in range(len(levels), 0, -1):
            node = path[i]
            if node.subscribers or node.children:
                break
            del path[i - 1].children[levels[i - 1]]

    def match(self, topic: str) -> dict[str, int]:
        """Every client id subscribed to ``topic``, with the highest QoS among its matching filters.

        MQTT 3.1.1 lets a broker deliver a message once to a client whose filters overlap,
        at the maximum of their QoS; that is what this returns. Topics starting with ``$``
        are not matched by a leading wildcard.
        """
        out: dict[str, int] = {}
        self._walk(self._root, topic.split("/"), 0, out, topic.startswith("$"))
        return out

    def _walk(self, node: _Node, levels: list[str], i: int, out: dict[str, int], dollar: bool) -> None:
        wild = not (dollar and i == 0)
        if wild and "#" in node.children:
            _collect(node.children["#"], out)
        if i == len(levels):
            _collect(node, out)
            return
        if wild and "+" in node.children:
            self._walk(node.children["+"], levels, i + 1, out, dollar)
        child = node.children.get(levels[i])
        if child is not None:
            self._walk(child, levels, i + 1, out, dollar)


def _collect(node: _Node, out: dict[str, int]) -> None:
    for client_id, qos in node.subscribers.items():
        if out.get(client_id, -1) < qos:
            out[client_id] = qos
