"""Commands and lazy attributes, as iotagent-node-lib runs them (``cmdMode`` legacy and
notification).

* ``cmdMode: legacy`` (the default, ``IOTA_CMD_MODE``; device > group > agent). Provisioning
  a device with ``commands`` or ``lazy`` attributes (its own or its group's) registers the
  agent as their context provider: ``POST /v2/registrations`` with the device's entity and
  those names, provider URL ``IOTA_PROVIDER_URL`` + ``/v2``. The broker forwards a
  ``PUT/PATCH`` of a command attribute as ``POST <provider>/op/update``.
* ``cmdMode: notification``. Provisioning creates the entity at once, every command
  attribute ``null``, and subscribes the agent to each command: ``POST /v2/subscriptions``
  with condition attrs ``[cmd]`` and URL ``IOTA_PROVIDER_URL`` + ``/notify``. A ``PUT`` of
  the command updates the entity, and the broker notifies the agent. Lazy attributes are
  still registered. ``advancedNotification`` is a draft in node-lib, not implemented
  there: such devices run as legacy ones.
* Either way the agent writes the command to its store (``provisioning.state``), answers
  2xx, and then, outside the broker's request, writes ``<cmd>_status`` PENDING and delivers:

  - MQTT: publish ``dev@cmd|value`` (UL) or ``{"cmd": value}`` (JSON) on
    ``/<apikey>/<device>/cmd``; the device answers on ``.../cmdexe``;
  - HTTP push (device ``endpoint``): POST the same payload; the response is the result;
  - HTTP poll (no endpoint): kept until the device asks with ``getCmd=1``, then DELIVERED;
  - LoRaWAN: a downlink through the network server (``south.lora``).

* A result sets ``<cmd>_status`` OK (or ERROR) and ``<cmd>_info``; a poll command not
  picked up within ``IOTA_POLLING_EXPIRATION`` ms ends ERROR / ``EXPIRED``.
  Both are written with ``POST /v2/op/update`` ``append``; ``<cmd>`` itself never changes.
* A command stays in the store until it ends (pushes: until handed to the transport), so
  after a restart, even a kill -9, poll commands wait for their device again and pushes
  not yet made are made (``start``).
* Deleting a device deletes its registrations and subscriptions (ids kept in the store;
  without them, any of ours naming its entity).
* ``/v2/op/query`` answers lazy attributes: the agents (UL, JSON) have no device to ask,
  so, like node-lib without a query handler, they come back with an empty value.

One module per concern, ``facade.Commands`` wiring them:

* ``routes``: the context provider endpoints the broker forwards and notifies to;
* ``registration``: registrations and subscriptions in the broker, and their removal;
* ``persistence``: commands stored before the broker's 2xx, reloaded on start;
* ``delivery``: PENDING, then the push through the device's transport
  (``http_push`` for devices with an endpoint);
* ``polling``: the queues of devices that poll; ``expiry``: their overdue commands;
* ``status``: ``<cmd>_status``/``<cmd>_info`` in the broker;
* ``payload``: the command and its result on the wire (UL or JSON).
"""

from __future__ import annotations

from .facade import Commands
from .payload import command_payload, parse_results
from .polling import PollCommand

__all__ = ["Commands", "PollCommand", "command_payload", "parse_results"]
