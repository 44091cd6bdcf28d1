"""The platform's dashboard (:3000, docs/dashboard.md): a web page served with a small backend.

* ``config``: options (``waziup dashboard --help``);
* ``live``: the live feed, one broker subscription per tenant fanned out to the pages as
  server-sent events;
* ``forward``: the page's calls to the broker, the history, the IoT agent and the rules
  service, with the caller's tenant and token headers;
* ``app``, ``server``: the Starlette app and uvicorn;
* ``static/``: the page (plain JavaScript modules, no build step) and ``static/vendor/``,
  the libraries ``scripts/vendor-dashboard.py`` copies from npm with their licences.
"""
