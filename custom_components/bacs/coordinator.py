"""Runtime data and the coordinator that carries the manager's snapshots to the entities.

Design: push. The bacs_core Manager runs its own poll loop in Home Assistant's event loop
(the thermal-runaway trip lives in that loop and must never wait for Home Assistant), and
calls our snapshot listener after every cycle; the listener hands the snapshot to the
coordinator with ``async_set_updated_data``. Polling again from a coordinator timer would
put a second owner on the port and double the bus traffic. ``_async_update_data`` only
serves the first refresh (and ``homeassistant.update_entity``): it returns the latest
snapshot, running one cycle if none exists yet; with ``always_update=False`` an unchanged
snapshot notifies nobody. Entities then write state only when their value changed at its
display precision (see entity.py), which is what keeps the recorder budget.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from bacs_core.bus import RegisterTransport
from bacs_core.bus.errors import BusError
from bacs_core.events import Event
from bacs_core.history import HistoryRecorder
from bacs_core.manager import StateUnreadableError
from bacs_core.remote.source import RemoteSource
from bacs_core.snapshot import (
    Capability,
    CurrentSensorSnapshot,
    DeviceInfo,
    DeviceRef,
    EnvironmentSnapshot,
    ModuleSnapshot,
    RelaySnapshot,
    StringSnapshot,
    SystemSnapshot,
)
from bacs_core.source import Source, SourceError

from .bus import port_exists, serial_path
from .const import (
    DOMAIN,
    EVENT_BACS,
    ISSUE_APPLIANCE_UNREACHABLE,
    ISSUE_DEVICES_SILENT,
    ISSUE_PORT_MISSING,
)

_LOGGER = logging.getLogger(__name__)
STORAGE_VERSION = 1
SILENT_LIST_MAX = 10


class StoreStorage:
    """bacs_core's Storage on Home Assistant's Store: latched alarms and the trip survive a
    reload or restart, and land in .storage with everything else Home Assistant keeps."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self.store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}")

    async def load(self) -> dict[str, Any] | None:
        """A store that exists but cannot be read is "unreadable", never "empty": Home
        Assistant sets a corrupt file aside and answers None, which would release a latched
        trip. bacs_core then starts with the trip state unknown and raises a critical alarm."""
        path = self.store.path
        existed = await self.store.hass.async_add_executor_job(os.path.exists, path)
        try:
            data = await self.store.async_load()
        except (HomeAssistantError, OSError, ValueError, KeyError, TypeError) as err:
            raise StateUnreadableError(f"{path}: {err}") from err
        if data is None and existed:
            raise StateUnreadableError(
                f"{path} is damaged (Home Assistant kept it as {path}.corrupt.*)"
            )
        if data is not None and not isinstance(data, dict):
            raise StateUnreadableError(f"{path} holds {type(data).__name__}, not an object")
        return data

    async def save(self, data: dict[str, Any]) -> None:
        await self.store.async_save(data)


@dataclass(frozen=True, slots=True)
class SnapshotIndex:
    """Lookups built once per snapshot so 2000 entities each find their value in O(1)."""

    modules: dict[DeviceRef, ModuleSnapshot] = field(default_factory=dict)
    strings: dict[int, StringSnapshot] = field(default_factory=dict)
    sensors: dict[DeviceRef, CurrentSensorSnapshot] = field(default_factory=dict)
    relays: dict[DeviceRef, RelaySnapshot] = field(default_factory=dict)
    environment: dict[DeviceRef, EnvironmentSnapshot] = field(default_factory=dict)
    infos: dict[DeviceRef, DeviceInfo] = field(default_factory=dict)
    bus_connected: dict[str, bool] = field(default_factory=dict)
    module_string: dict[DeviceRef, int] = field(default_factory=dict)
    # Where each device (by identity: family and serial) answers now. A re-addressed module
    # may linger at its old address (silent) until the manager forgets it: the address it
    # answers at wins, then the one it was last seen at.
    by_identity: dict[str, DeviceRef] = field(default_factory=dict)
    topology: frozenset[str] = frozenset()

    @classmethod
    def build(cls, snap: SystemSnapshot) -> SnapshotIndex:
        modules: dict[DeviceRef, ModuleSnapshot] = {}
        module_string: dict[DeviceRef, int] = {}
        for s in snap.strings:
            for m in s.modules:
                modules[m.info.ref] = m
                module_string[m.info.ref] = s.index
        sensors = {c.info.ref: c for c in snap.current_sensors}
        relays = {r.info.ref: r for r in snap.relays}
        environment = {e.info.ref: e for e in snap.environment}
        infos = {ref: m.info for ref, m in modules.items()}
        for group in (sensors, relays, environment):
            infos.update({ref: item.info for ref, item in group.items()})
        ranked = sorted(infos.values(), key=_freshness)
        by_identity = {identity_key(info): info.ref for info in ranked}
        return cls(
            modules=modules,
            strings={s.index: s for s in snap.strings},
            sensors=sensors,
            relays=relays,
            environment=environment,
            infos=infos,
            bus_connected={b.id: b.connected for b in snap.buses},
            module_string=module_string,
            by_identity=by_identity,
            topology=frozenset(by_identity) | {f"string-{s.index}" for s in snap.strings},
        )

    def device_available(self, ref: DeviceRef) -> bool:
        info = self.infos.get(ref)
        return info is not None and info.online and self.bus_connected.get(ref.bus, False)


def _freshness(info: DeviceInfo) -> tuple[bool, float]:
    """Sort key, best last: answering now, then most recently seen."""
    return (info.online, info.last_seen.timestamp() if info.last_seen else 0.0)


class BacsCoordinator(DataUpdateCoordinator[SystemSnapshot]):
    """Holds the latest SystemSnapshot; fed by the manager (push), never polls on a timer."""

    config_entry: BacsConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: BacsConfigEntry, manager: Source, url: str
    ) -> None:
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=None,
            always_update=False,
        )
        self.manager = manager
        self.index = SnapshotIndex()
        self._bus_up: dict[str, bool] = {}
        self._silent: tuple[str, ...] = ()
        self._appliance_lost: str | None = None  # why a remote appliance cannot be heard
        self._url = url

    async def _async_update_data(self) -> SystemSnapshot:
        snap = self.manager.snapshot
        if snap is None:
            try:
                snap = await self.manager.poll_once()
            except (BusError, SourceError) as err:
                raise UpdateFailed(
                    translation_domain=DOMAIN,
                    translation_key="poll_failed",
                    translation_placeholders={"error": str(err)},
                ) from err
        self._absorb(snap)
        return snap

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What the source can do: entities, buttons and actions exist only for these."""
        return self.manager.capabilities

    def can(self, capability: Capability | None) -> bool:
        return capability is None or capability in self.manager.capabilities

    @callback
    def handle_snapshot(self, snap: SystemSnapshot) -> None:
        """The manager's snapshot listener (runs in the event loop, inside its cycle)."""
        self._absorb(snap)
        self.async_set_updated_data(snap)

    @callback
    def _absorb(self, snap: SystemSnapshot) -> None:
        self.index = SnapshotIndex.build(snap)
        for bus in snap.buses:
            before = self._bus_up.get(bus.id)
            if before is not None and before != bus.connected:
                if bus.connected:
                    _LOGGER.info("%s: the battery bus answers again", self.config_entry.title)
                    ir.async_delete_issue(self.hass, DOMAIN, self.port_issue_id)
                else:
                    _LOGGER.info("%s: the battery bus is lost", self.config_entry.title)
                    self.config_entry.async_create_task(
                        self.hass, self._async_check_port(), "bacs port check"
                    )
            self._bus_up[bus.id] = bus.connected
        self._update_silent_issue()
        if isinstance(self.manager, RemoteSource):
            self._update_appliance_issue(self.manager)

    @property
    def port_issue_id(self) -> str:
        return f"{ISSUE_PORT_MISSING}_{self.config_entry.entry_id}"

    async def _async_check_port(self) -> None:
        """A lost serial bus whose device node is gone: the adapter moved or was unplugged."""
        path = serial_path(self._url)
        if path is None or await self.hass.async_add_executor_job(port_exists, path):
            return
        async_create_port_issue(self.hass, self.config_entry, path)

    @callback
    def _update_appliance_issue(self, source: RemoteSource) -> None:
        """A remote appliance Home Assistant cannot hear: its trip still runs there, but
        nothing here shows the room until it is back."""
        issue_id = f"{ISSUE_APPLIANCE_UNREACHABLE}_{self.config_entry.entry_id}"
        if source.reachable:
            if self._appliance_lost:
                _LOGGER.info("%s: the appliance is heard again", self.config_entry.title)
                ir.async_delete_issue(self.hass, DOMAIN, issue_id)
            self._appliance_lost = None
            return
        why = "its MQTT broker cannot be reached" if not source.connected else "it is offline"
        if why == self._appliance_lost:
            return
        self._appliance_lost = why
        _LOGGER.warning("%s: the appliance cannot be heard (%s)", self.config_entry.title, why)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_APPLIANCE_UNREACHABLE,
            translation_placeholders={"title": self.config_entry.title, "why": why},
        )

    @callback
    def _update_silent_issue(self) -> None:
        if not all(self.index.bus_connected.values()):
            return  # the bus issue speaks for every device on it
        index = self.index
        silent = tuple(  # a re-addressed module's old address is not a silent device
            str(ref)
            for ref, info in index.infos.items()
            if not info.online and index.by_identity.get(identity_key(info)) == ref
        )
        if silent == self._silent:
            return
        self._silent = silent
        issue_id = f"{ISSUE_DEVICES_SILENT}_{self.config_entry.entry_id}"
        if not silent:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
            return
        shown = ", ".join(silent[:SILENT_LIST_MAX]) + (
            " …" if len(silent) > SILENT_LIST_MAX else ""
        )
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_DEVICES_SILENT,
            translation_placeholders={
                "title": self.config_entry.title,
                "count": str(len(silent)),
                "devices": shown,
            },
        )

    # -- events --------------------------------------------------------------------------
    @callback
    def handle_event(self, event: Event) -> None:
        """Every manager event goes onto the HA bus as ``bacs_event`` (device triggers use it)."""
        registry = dr.async_get(self.hass)
        hub = registry.async_get_device(identifiers={hub_identifier(self.config_entry)})
        device_id = hub.id if hub else None
        if event.device is not None and (info := self.index.infos.get(event.device)):
            dev = registry.async_get_device(identifiers={device_identifier(info)})
            device_id = dev.id if dev else device_id
        elif event.string is not None:
            dev = registry.async_get_device(
                identifiers={string_identifier(self.config_entry, event.string)}
            )
            device_id = dev.id if dev else device_id
        self.hass.bus.async_fire(
            EVENT_BACS,
            {
                "type": event.type.value,
                "message": event.message,
                "config_entry_id": self.config_entry.entry_id,
                "hub_device_id": hub.id if hub else None,
                "device_id": device_id,
                "device": str(event.device) if event.device else None,
                "string": event.string,
                "data": dict(event.data),
                "timestamp": event.timestamp.isoformat(),
                # The trip state as the event is announced: automations follow the manager's
                # own trip (the runaway blueprint does not count down after it tripped).
                "trip_state": self.manager.trip_state.value,
            },
        )


@callback
def async_create_port_issue(hass: HomeAssistant, entry: ConfigEntry[Any], path: str) -> None:
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"{ISSUE_PORT_MISSING}_{entry.entry_id}",
        is_fixable=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_PORT_MISSING,
        translation_placeholders={"title": entry.title, "port": path},
        data={"entry_id": entry.entry_id},
    )


def hub_identifier(entry: ConfigEntry[Any]) -> tuple[str, str]:
    return (DOMAIN, entry.entry_id)


def string_identifier(entry: ConfigEntry[Any], index: int) -> tuple[str, str]:
    return (DOMAIN, f"{entry.entry_id}-string-{index}")


def identity_key(info: DeviceInfo) -> str:
    """A bus device by model family and serial number, never by its address. A device that
    reports no serial number (a GENEREX web manager's modules) is known by where it is."""
    if not info.serial:
        return f"{info.kind.family.value}-{info.ref.bus}-{info.ref.unit}"
    return f"{info.kind.family.value}-{info.serial}"


def device_identifier(info: DeviceInfo) -> tuple[str, str]:
    """Bus devices by serial: a re-addressed module keeps its device and history, a module
    replaced at the same address becomes a new device."""
    return (DOMAIN, identity_key(info))


@dataclass
class BacsRuntimeData:
    manager: Source  # a Manager (our module bus) or a GenerexSource (read-only)
    coordinator: BacsCoordinator
    transport: RegisterTransport | None  # None for a GENEREX web manager
    url: str
    unsubscribe: list[Any] = field(default_factory=list)
    history: HistoryRecorder | None = None  # history.py: the entry's battery history


type BacsConfigEntry = ConfigEntry[BacsRuntimeData]
