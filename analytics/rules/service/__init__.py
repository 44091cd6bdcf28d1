"""The rules service: the HTTP service around the pure engine (``analytics.rules``), Perseo's API.

Modules, one job each:

* ``config``: the options (flags, ``PERSEO_*``/``WAZIUP_RULES_*`` variables), ``Secret``;
* ``errors``: ``RulesError`` and its statuses, in Perseo's answer shape;
* ``notices``: ``POST /notices`` bodies into changes (pure);
* ``subscriptions``: each rule's broker subscription (body pure; ``Subscriber`` over ``ngsi.client``);
* ``executor``: the bounded queue and workers that run actions; ``mailer``: SMTP;
* ``store``: rules, engine snapshots and firings (``sqlite``, ``memory``), chosen by URL;
* ``service``: ``RulesService``, rules and the engine, background tasks;
* ``routes``, ``seam``, ``app``, ``server``: the HTTP service (:9090).

docs/rules.md, "The service", describes the whole.
"""
