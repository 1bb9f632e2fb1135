"""The integration's seam onto bacs_core's bus: URLs from flow input, stable port paths,
and the connection probe the flows and setup share (test before configure and setup)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bacs_core.bus import BusClient, RegisterTransport, open_transport, parse_bus_url
from bacs_core.bus.readings import DeviceIdentity
from bacs_core.bus.url import Scheme
from bacs_core.model import FACTORY_UNIT_ID, DeviceFamily
from bacs_core.sim.clock import SimClock

from .const import (
    BUS_ID,
    CONF_BAUDRATE,
    CONF_COMMUNITY,
    CONF_FRAMING,
    CONF_HOST,
    CONF_KIND,
    CONF_PARITY,
    CONF_PORT_PATH,
    CONF_SIM_BLOCKS,
    CONF_SIM_CONTROL,
    CONF_SIM_NAME,
    CONF_SIM_STRINGS,
    CONF_SNMP_PORT,
    CONF_TCP_PORT,
    CONF_UNIT,
    FRAMING_RTU,
    KIND_GENEREX,
    KIND_SERIAL,
    KIND_SIM,
    KIND_TCP,
    PARITY_CODES,
)

BY_ID_DIR = Path("/dev/serial/by-id")
PROBE_TIMEOUT_S = 0.15
# Addresses are handed out from 1 (docs/protocol.md, Addressing): a bus on which none of the
# first units answers is silent (wrong speed or framing, or not a battery bus at all). The
# flow says so after these, in about 2.4 s, instead of trying all 247 (37 s).
SILENT_AFTER_UNITS = 16


class SilentBusError(Exception):
    """The port opened, but none of the first units answered anything."""

    def __init__(self, units: int, seconds: float) -> None:
        self.units = units
        self.seconds = seconds
        super().__init__(f"no answer from units 1-{units} in {seconds:.1f} s")


def hardware_id(devices: list[DeviceIdentity] | tuple[DeviceIdentity, ...]) -> str | None:
    """The bus's identity from its hardware, for the entry's unique id: the relay module's
    serial number, else the lowest battery module serial, else the lowest of any device.
    Survives a new port, gateway address or adapter; a second entry on the same modules is
    refused whatever its connection."""
    for family in (DeviceFamily.RELAY, DeviceFamily.BATTERY_MODULE, None):
        serials = [d.serial for d in devices if family is None or d.family is family]
        if serials:
            kind = family.value if family is not None else "device"
            return f"{kind}-{min(serials)}"
    return None


def make_transport(url: str) -> RegisterTransport:
    """The one place a transport is opened (tests map a serial URL onto the simulator here)."""
    return open_transport(url)


async def async_make_transport(url: str) -> RegisterTransport:
    """In the executor: building a simulated room runs its physics for a while."""
    return await asyncio.get_running_loop().run_in_executor(None, make_transport, url)


def sim_clock(data: Mapping[str, Any]) -> SimClock | None:
    """The simulator's clock when the entry's bus is a ``bacs simulate --speed N`` whose control
    channel it names (advanced mode); None for every other bus: the monotonic clock. Raises
    ValueError for an address that is not HOST:PORT."""
    control = str(data.get(CONF_SIM_CONTROL) or "").strip()
    return SimClock.parse(f"sim:{control}") if control else None


def build_url(data: dict[str, Any]) -> str:
    """The bacs_core bus URL for a connection as the flows store it in entry.data."""
    kind = data[CONF_KIND]
    if kind == KIND_SERIAL:
        parity = PARITY_CODES[data[CONF_PARITY]]
        query = urlencode({"baudrate": data[CONF_BAUDRATE], "parity": parity})
        return f"serial://{data[CONF_PORT_PATH]}?{query}"
    if kind == KIND_TCP:
        scheme = "rtu+tcp" if data[CONF_FRAMING] == FRAMING_RTU else "tcp"
        return f"{scheme}://{data[CONF_HOST]}:{data[CONF_TCP_PORT]}"
    if kind == KIND_GENEREX:
        query = urlencode(
            {
                "unit": data[CONF_UNIT],
                "snmp": data[CONF_SNMP_PORT],
                "community": data[CONF_COMMUNITY],
            }
        )
        return f"generex://{host_for_url(data[CONF_HOST])}:{data[CONF_TCP_PORT]}?{query}"
    query = urlencode(
        {"strings": data[CONF_SIM_STRINGS], "blocks": data[CONF_SIM_BLOCKS], "speed": 1}
    )
    return f"sim://{data[CONF_SIM_NAME]}?{query}"


def connection_id(data: dict[str, Any]) -> str:
    """The connection as the first entries' unique id spelled it (version 1): the stable port
    path, the gateway address, or the simulator name. Still used to refuse a second entry on
    the same connection before its bus is opened."""
    kind = data[CONF_KIND]
    if kind == KIND_SERIAL:
        return f"serial:{data[CONF_PORT_PATH]}"
    if kind == KIND_TCP:
        return f"tcp:{data[CONF_HOST].lower()}:{data[CONF_TCP_PORT]}"
    if kind == KIND_GENEREX:
        return f"generex:{data[CONF_HOST].lower()}:{data[CONF_TCP_PORT]}:{data[CONF_UNIT]}"
    assert kind == KIND_SIM
    return f"sim:{data[CONF_SIM_NAME]}"


def host_for_url(host: str) -> str:
    """An IPv6 address in a URL goes in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def serial_path(url: str) -> str | None:
    if url.startswith(("generex://", "mqtt://", "mqtts://")):  # no port of ours
        return None
    parsed = parse_bus_url(url)
    return parsed.path if parsed.scheme is Scheme.SERIAL else None


def stable_port_path(device: str) -> str:
    """The /dev/serial/by-id link for a device node (ttyUSB0 and ttyUSB1 swap on reboot)."""
    if not BY_ID_DIR.is_dir():
        return device
    target = os.path.realpath(device)
    for link in sorted(BY_ID_DIR.iterdir()):
        if os.path.realpath(link) == target:
            return str(link)
    return device


def port_exists(path: str) -> bool:
    return os.path.exists(path)


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """What a probe found on the bus: the counts the flow shows before anything is created."""

    modules: int
    current_sensors: int
    relays: int
    environment: int
    relay_units: tuple[int, ...]
    hardware_id: str | None

    @property
    def empty(self) -> bool:
        return not (self.modules or self.current_sensors or self.relays or self.environment)


async def async_probe(url: str) -> ScanSummary:
    """Open the bus, scan it and close it. Raises bacs_core bus errors (PortBusyError, …),
    or SilentBusError as soon as the first units have all stayed silent."""
    transport = await async_make_transport(url)
    await transport.connect()
    client = BusClient(transport, BUS_ID)
    try:
        first = await client.scan(range(1, SILENT_AFTER_UNITS + 1), timeout=PROBE_TIMEOUT_S)
        if not first.devices and not first.unknown:
            raise SilentBusError(SILENT_AFTER_UNITS, SILENT_AFTER_UNITS * PROBE_TIMEOUT_S)
        rest = await client.scan(
            range(SILENT_AFTER_UNITS + 1, FACTORY_UNIT_ID + 1), timeout=PROBE_TIMEOUT_S
        )
    finally:
        await transport.close()
    devices = first.devices + rest.devices
    families = [d.family for d in devices]
    return ScanSummary(
        modules=families.count(DeviceFamily.BATTERY_MODULE),
        current_sensors=families.count(DeviceFamily.CURRENT_SENSOR),
        relays=families.count(DeviceFamily.RELAY),
        environment=families.count(DeviceFamily.ENVIRONMENT),
        relay_units=tuple(d.unit for d in devices if d.family is DeviceFamily.RELAY),
        hardware_id=hardware_id(devices),
    )


async def async_check_port(url: str) -> None:
    """Open and close the port only (the repair flow's check that a new path works)."""
    transport = await async_make_transport(url)
    await transport.connect()
    await transport.close()
