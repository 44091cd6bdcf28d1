"""NGSI-v2 subscriptions: the resource (model, registry, routes) and the notifier.

``model`` parses and renders subscriptions, ``registry`` keeps them (in memory, written
through to the store); the notifier modules decide which fire on an entity change and
deliver the notifications.
"""
