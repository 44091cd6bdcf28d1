"""The identity manager: Keyrock-compatible users, organizations, applications (OAuth
clients), roles and permissions; OAuth 2.0 and OpenID Connect; token validation and
decisions for PEPs (``GET /user``). Run it with ``python -m security.idm`` (port 3005).
See ``docs/security.md``.
"""
