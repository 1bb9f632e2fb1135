"""One way to build a paho-mqtt client, for the appliance's publisher and the remote source.

Both speak MQTT 3.1.1 with paho's version-2 callbacks, authenticate the same way and verify the
broker's certificate unless told it is a test broker; only the session differs (the publisher
keeps one so a broker restart is noticed; a remote reader starts clean).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30


@dataclass(frozen=True, slots=True)
class ClientTls:
    ca_certs: str | None = None  # None: the system's trust store
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False  # skip the host-name check (a test broker), never the chain


def make_client(
    client_id: str,
    *,
    clean_session: bool,
    username: str | None = None,
    password: str | None = None,
    tls: ClientTls | None = None,
) -> Client:
    client = Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv311,
        clean_session=clean_session,
    )
    configure_client(client, username=username, password=password, tls=tls)
    return client


def configure_client(
    client: Client,
    *,
    username: str | None = None,
    password: str | None = None,
    tls: ClientTls | None = None,
) -> None:
    """Credentials, TLS and the reconnect back-off on a client (also one a test made)."""
    if username:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set(
            ca_certs=tls.ca_certs,
            certfile=tls.certfile,
            keyfile=tls.keyfile,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        if tls.insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
