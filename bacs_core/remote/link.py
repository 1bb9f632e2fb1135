"""The one MQTT connection of a remote source: paho's client and its network thread.

paho calls back on its own thread; every callback here only hands the news to the event loop
(``call_soon_threadsafe``), where the source handles it. Nothing on paho's thread touches the
source's state, and no consumer's listener ever runs on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..mqtt.client import ClientTls, make_client
from .url import RemoteAddress

KEEPALIVE_S = 30


class BrokerLink:
    """Connects (and reconnects, backing off to 30 s), subscribes ``subscriptions`` on every
    connect, and reports on the loop: ``on_up(True/False)``, ``on_failed(why, refused)``,
    ``on_subscribed()``, ``on_message(topic, payload)``."""

    def __init__(
        self,
        address: RemoteAddress,
        client_id: str,
        subscriptions: Sequence[tuple[str, int]],
        *,
        on_up: Callable[[bool], None],
        on_failed: Callable[[str, bool], None],
        on_subscribed: Callable[[], None],
        on_message: Callable[[str, bytes], None],
    ) -> None:
        self.address = address
        self.subscriptions = list(subscriptions)
        self._on_up, self._on_failed = on_up, on_failed
        self._on_subscribed_cb, self._on_message_cb = on_subscribed, on_message
        self._loop: asyncio.AbstractEventLoop | None = None
        # No stored session: the retained snapshot carries the state, and events from while
        # we were away must not fire automations late.
        tls = ClientTls(address.ca_certs, insecure=address.insecure) if address.tls else None
        client = make_client(
            client_id,
            clean_session=True,
            username=address.username,
            password=address.password,
            tls=tls,
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.client: Client | None = client

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.client is not None
        self._loop = loop
        self.client.connect_async(self.address.host, self.address.port, keepalive=KEEPALIVE_S)
        self.client.loop_start()

    def publish(self, topic: str, payload: str, qos: int) -> None:
        if self.client is not None:
            self.client.publish(topic, payload, qos=qos)

    async def stop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    # -- paho's thread -------------------------------------------------------------------
    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(fn, *args)

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._call(self._on_failed, f"the broker refused the connection: {reason}", True)
            return
        client.subscribe(self.subscriptions)
        self._call(self._on_up, True)

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._call(self._on_subscribed_cb)

    def _on_connect_fail(self, client: Client, userdata: Any) -> None:
        self._call(self._on_failed, "cannot connect", False)

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call(self._on_up, False)

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        self._call(self._on_message_cb, message.topic, bytes(message.payload))
