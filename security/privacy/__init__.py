"""Privacy policies and the one transform engine (issue 18), pure: no I/O, no service.

``policy`` reads the documents (``schema.json``) and picks the one that applies,
``transforms`` holds each transform as a function, ``engine`` applies a policy to the
shapes data leaves the platform in (entities, notifications, history answers, CSV rows),
``keys`` and ``budget`` hold the state the services persist. docs/privacy.md is the guide.
"""
