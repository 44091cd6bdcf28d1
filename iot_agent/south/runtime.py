"""The running agent: north app (4041), south HTTP (7896), MQTT client, commands, LoRaWAN,
all in one event loop and sharing one registry and one NGSI client.

``Agent.running()`` opens everything (the north app's lifespan opens the registry) and
closes it in reverse order; ``serve(config)`` runs the agent until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

import uvicorn

from ngsi.client import HTTPClient, NGSIClient

from ..app import create_app as create_north_app
from ..broker_auth import broker_credentials
from ..commands import Commands
from .. import seam
from ..config import Config
from ..mqtt_auth import MqttAccounts
from ..provisioning.store import ProvisioningStore, open_registry
from . import http
from .ingest import Southbound
from .lora import LoraSouth
from .mqtt import MqttSouth

log = logging.getLogger("waziup.iot_agent")

# Connections to the context broker: a broker process gains nothing from more than a few,
# and every idle one costs the agent. Southbound bounds its requests in flight to the same
# number, so measures wait in its batches, not in the connection pool's queue.
BROKER_CONNECTIONS = 8


class Agent:
    def __init__(self, config: Config, *, registry: ProvisioningStore | None = None, ngsi: NGSIClient | None = None) -> None:
        self.config = config
        self.registry = registry if registry is not None else open_registry(config.registry_path)
        credentials = broker_credentials(config)  # IOTA_AUTH_*: a broker behind a PEP
        self.ngsi = ngsi if ngsi is not None else NGSIClient(
            config.broker_url,
            transport=HTTPClient(max_per_host=BROKER_CONNECTIONS, ssl_context=config.broker_ssl_context()),
            credentials=credentials,
        )
        self._own_ngsi = ngsi is None
        self.south = Southbound(
            self.registry, self.ngsi, config, max_in_flight=BROKER_CONNECTIONS, credentials=credentials
        )
        self.commands = Commands(self.south, config)
        self.south.provision_hooks.append(self.commands.on_autoprovision)
        self.mqtt: MqttSouth | None = None
        self.lora: LoraSouth | None = None
        if config.mqtt_host:
            self.mqtt = MqttSouth(config, self.south, on_result=self.commands.result)
            self.commands.push["mqtt"] = self.mqtt.deliver
            self.lora = LoraSouth(self.south, self.mqtt, set_status=self.commands.set_status)
            self.commands.push["lora"] = self.lora.downlink
        # the groups' MQTT accounts, when the agent keeps Mosquitto's password file (waziup run)
        self.mqtt_accounts: MqttAccounts | None = None
        if config.mqtt_passwd_file:
            self.mqtt_accounts = MqttAccounts(self.registry, config.mqtt_passwd_file, config.mqtt_broker_pidfile)
        routes = [*self.commands.routes(), *(self.mqtt_accounts.routes() if self.mqtt_accounts else [])]
        self.north_app = create_north_app(config, registry=self.registry, ngsi=self.ngsi, routes=routes)
        # the device cache first: the other listeners may look devices up
        self.north_app.state.provisioning_listeners.insert(0, self.south.on_provisioning)
        self.north_app.state.provisioning_listeners.append(self.commands.on_provisioning)
        if self.mqtt_accounts is not None:  # before the commands' listener, which may fail on the broker
            self.north_app.state.provisioning_listeners.insert(1, self.mqtt_accounts.on_provisioning)
        self.http_app = http.create_app(self.south, self.commands)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Agent]:
        async with self.north_app.router.lifespan_context(self.north_app):
            await self.commands.start()
            if self.mqtt_accounts is not None:
                await self.mqtt_accounts.sync()  # the accounts follow the registry before devices connect
            if self.mqtt is not None:
                await self.mqtt.start()
            try:
                yield self
            finally:
                if self.mqtt is not None:
                    await self.mqtt.stop()
                await self.commands.stop()
                await self.south.aclose()
                if self._own_ngsi:
                    await self.ngsi.aclose()


class _Server(uvicorn.Server):
    """Signals are handled once for every server (see ``run``)."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def,override]
        yield


async def run(config: Config) -> None:
    agent = Agent(config)
    servers = [
        _Server(uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, server_header=False, lifespan="off",
            http=seam.http_protocol(config), **config.tls_options(),
        ))
        for app, host, port in (
            (agent.north_app, config.north_host, config.north_port),
            (agent.http_app, config.http_host, config.http_port),
        )
    ]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)
    async with agent.running():
        log.info(
            "IoT agent: north %s, south HTTP %s, MQTT %s, broker %s",
            config.north_port, config.http_port,
            f"{config.mqtt_host}:{config.mqtt_port}" if config.mqtt_host else "off", config.broker_url,
        )
        await asyncio.gather(*(server.serve() for server in servers))


def serve(config: Config) -> None:
    level = config.log_level.upper()
    logging.basicConfig(
        level=getattr(logging, "WARNING" if level == "WARN" else level, logging.INFO),
        format="time=%(asctime)s | lvl=%(levelname)s | comp=%(name)s | msg=%(message)s",
    )
    asyncio.run(run(config))
