"""The agent's token for a broker behind a PEP, from its ``IOTA_AUTH_*`` settings.

iotagent-node-lib's ``authentication`` block (its admin guide): ``oauth2`` with the
agent's client id and secret at ``url`` + ``tokenPath`` (``permanentToken``: Keyrock's
permanent token, fetched once), or ``keystone`` with a user and password. The token goes
with every request to the broker: entity updates, batches of measures, registrations and
subscriptions (``ngsi.client.credentials``).
"""

from __future__ import annotations

from ngsi.client.credentials import Credentials, KeystoneCredentials, OAuth2ClientCredentials
from ngsi.client.http11 import HTTPClient
from ngsi.settings import SettingsError

from .config import Config


def idm_url(config: Config) -> str:
    if config.auth_url:
        return config.auth_url.rstrip("/")
    if config.auth_host:
        return f"http://{config.auth_host}:{config.auth_port}"
    raise SettingsError("IOTA_AUTH_ENABLED needs IOTA_AUTH_URL (or IOTA_AUTH_HOST and IOTA_AUTH_PORT)")


def broker_credentials(config: Config) -> Credentials | None:
    """None unless ``auth_enabled``; SettingsError for an incomplete block."""
    if not config.auth_enabled:
        return None
    url = idm_url(config)
    transport = HTTPClient(max_per_host=2, ssl_context=config.broker_ssl_context())
    if config.auth_type == "keystone":
        if not config.auth_user or not config.auth_password:
            raise SettingsError("IOTA_AUTH_TYPE keystone needs IOTA_AUTH_USER and IOTA_AUTH_PASSWORD")
        return KeystoneCredentials(transport, url, config.auth_user, config.auth_password, header=config.auth_header)
    if not config.auth_client_id or not config.auth_client_secret:
        raise SettingsError("IOTA_AUTH_TYPE oauth2 needs IOTA_AUTH_CLIENT_ID and IOTA_AUTH_CLIENT_SECRET")
    return OAuth2ClientCredentials(
        transport, url + config.auth_token_path, config.auth_client_id, config.auth_client_secret,
        header=config.auth_header, permanent=config.auth_permanent_token,
        username=config.auth_user, password=config.auth_password,  # both set: the password grant
    )
