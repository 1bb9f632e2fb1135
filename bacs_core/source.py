"""Sources: what produces a ``SystemSnapshot`` and events, whatever it reads.

Two kinds exist. Our module bus (:class:`bacs_core.manager.Manager`) is active: it polls,
equalizes, judges alarms and trips the breaker. A GENEREX WEB-MANAGER / CS141
(:class:`bacs_core.generex.source.GenerexSource`) is passive: it is read over Modbus TCP and
SNMP, never written, and our alarm rules run on its readings. Consumers (the CLI, the gateway,
Home Assistant) hold a :class:`Source`, read ``snapshot.capabilities`` and offer nothing else;
a command the source cannot do raises :class:`UnsupportedCommandError`.

A third kind, :class:`bacs_core.remote.source.RemoteSource`, is a BACS appliance elsewhere
(``bacs run`` with ``mqtt: {snapshot: true}``) read through its MQTT broker: the manager and
its trip run on the appliance, the source hands on its snapshots, events and enabled commands.

``open_source(url, config)`` picks the kind by the URL's scheme: ``generex://`` is a CS141,
``mqtt://`` / ``mqtts://`` a remote appliance, anything else a bus of our modules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .listeners import EventListener, SnapshotListener
from .snapshot import Capability, DeviceRef, SystemSnapshot, TripState

if TYPE_CHECKING:
    from .bus import RegisterTransport
    from .manager.config import ManagerConfig
    from .manager.storage import Storage

GENEREX_SCHEME = "generex://"
REMOTE_SCHEMES = ("mqtt://", "mqtts://")

MANAGER_CAPABILITIES = frozenset(c for c in Capability if c is not Capability.GENERAL_FLAGS)
GENEREX_CAPABILITIES = frozenset(
    {Capability.ACKNOWLEDGE, Capability.PER_BLOCK_RESISTANCE, Capability.GENERAL_FLAGS}
)


class SourceError(Exception):
    """The root of what a source raises for a command it will not carry out."""


class UnsupportedCommandError(SourceError):
    """The source cannot do this at all (a read-only GENEREX system asked to trip)."""

    def __init__(self, command: str, source: str, why: str) -> None:
        self.command = command
        super().__init__(f"{command}: not possible on {source} ({why})")


class SourceUnavailableError(SourceError):
    """The source cannot be read at start (nothing answers at its address)."""


@runtime_checkable
class Source(Protocol):
    """The surface every consumer uses. Commands the source lacks raise
    UnsupportedCommandError; ``capabilities`` (also on every snapshot) says which those are."""

    snapshot: SystemSnapshot | None

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    @property
    def config(self) -> ManagerConfig: ...

    @property
    def trip_state(self) -> TripState: ...

    @property
    def devices(self) -> Mapping[DeviceRef, Any]: ...

    def add_snapshot_listener(self, cb: SnapshotListener) -> Callable[[], None]: ...

    def add_event_listener(self, cb: EventListener) -> Callable[[], None]: ...

    async def start(self, *, run_loop: bool = True) -> None: ...

    async def stop(self) -> None: ...

    async def poll_once(self) -> SystemSnapshot: ...

    async def acknowledge(self, key: str | None = None) -> int: ...

    async def apply_config(self, config: ManagerConfig) -> None: ...

    def diagnostics(self) -> dict[str, Any]: ...

    # -- commands of an active source (UnsupportedCommandError elsewhere) -----------------
    async def trip(self, reason: str, string: int | None = None) -> None: ...

    async def reset_trip(self, string: int | None = None) -> None: ...

    async def measure_resistance(self, ref: DeviceRef) -> None: ...

    async def identify(self, ref: DeviceRef) -> None: ...

    async def set_relay(self, ref: DeviceRef, channel: int, on: bool) -> None: ...

    async def set_equalization(self, enabled: bool) -> None: ...

    async def set_float_voltage(self, volts: float | None) -> None: ...

    async def rescan(self) -> list[DeviceRef]: ...


def is_remote_url(url: str) -> bool:
    """``mqtt://`` or ``mqtts://``: a BACS appliance read through its broker."""
    return url.strip().lower().startswith(REMOTE_SCHEMES)


def is_generex_url(url: str) -> bool:
    return url.strip().lower().startswith(GENEREX_SCHEME)


def open_source(
    url: str,
    config: ManagerConfig,
    *,
    storage: Storage | None = None,
    transports: Mapping[str, RegisterTransport] | None = None,
    clock: Callable[[], float] | None = None,
    wall_clock: Callable[[], datetime] | None = None,
) -> Source:
    """The source for ``url``: a GENEREX CS141 for ``generex://``, a remote appliance for
    ``mqtt://`` / ``mqtts://`` (the password in the URL or none), else the Manager on the
    buses of ``config`` (whose first bus is ``url``). Not started: call ``start()``.
    A malformed URL raises a ValueError (GenerexUrlError, RemoteUrlError) naming what is
    wrong."""
    if is_remote_url(url):
        from .remote.source import RemoteSource
        from .remote.url import parse_remote_url

        return RemoteSource(parse_remote_url(url), config)
    if is_generex_url(url):
        from .generex.source import GenerexSource
        from .generex.url import parse_generex_url

        bus_id = config.buses[0].id if config.buses else "cs141"
        return GenerexSource(
            parse_generex_url(url),
            config,
            source_id=bus_id,
            storage=storage,
            clock=clock,
            wall_clock=wall_clock,
        )
    from .manager import Manager

    return Manager(
        config, storage=storage, transports=transports, clock=clock, wall_clock=wall_clock
    )
