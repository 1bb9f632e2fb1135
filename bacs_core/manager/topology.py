"""What is on the buses and how it forms the installation: devices, strings, relays.

Built from a scan (``discover``) and rebuilt when the configuration or the devices change.
A device once found stays in the topology when it stops answering: it is polled every cycle
and its silence is presence's business, not a reason to forget where it is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..bus import BusClient, BusConnectionError, DeviceIdentity
from ..model import RELAY_CHANNELS, DeviceFamily
from ..snapshot import DeviceRef
from .breakers import Breaker
from .charge_state import ChargeStateTracker
from .config import ManagerConfig
from .equalization import EqualizationController, StringCommands

_LOG = logging.getLogger(__name__)
SCAN_TIMEOUT_S = 0.1


@dataclass
class StringRuntime:
    """One string's devices and the per-string state that lives across cycles."""

    index: int
    name: str
    modules: list[DeviceRef]
    sensor: DeviceRef | None
    capacity_ah: float
    controller: EqualizationController
    charge: ChargeStateTracker
    soc: float = 100.0
    balancing: bool = False
    commands: StringCommands | None = None
    out_of_range: frozenset[int] = frozenset()


class Topology:
    def __init__(self, bus_order: Sequence[str]) -> None:
        self._bus_order = {b: i for i, b in enumerate(bus_order)}
        self.devices: dict[DeviceRef, DeviceIdentity] = {}
        self.strings: list[StringRuntime] = []
        self.relays: list[DeviceRef] = []
        self.sensors: list[DeviceRef] = []
        self.environment: list[DeviceRef] = []
        # Identity changes seen by scans since the manager last took them (``take_changes``):
        # a module answering at a new address (old ref → new ref), and a new module at an
        # address another one had (its history is not the new one's).
        self._moved: dict[DeviceRef, DeviceRef] = {}
        self._replaced: set[DeviceRef] = set()

    async def discover(
        self,
        clients: Mapping[str, BusClient],
        units: Mapping[str, Sequence[int]] | None = None,
        *,
        family: DeviceFamily | None = None,
    ) -> list[DeviceRef]:
        """Scan the connected buses (every unit, or only ``units`` per bus) and add what
        answers (of ``family`` only, when given). Returns the refs that are new."""
        found: dict[DeviceRef, DeviceIdentity] = {}
        for bus_id, client in clients.items():
            if not client.connected:
                continue
            wanted = units.get(bus_id) if units is not None else None
            if units is not None and not wanted:
                continue
            try:
                result = (
                    await client.scan(wanted, timeout=SCAN_TIMEOUT_S)
                    if wanted is not None
                    else await client.scan(timeout=SCAN_TIMEOUT_S)
                )
            except BusConnectionError as err:
                _LOG.warning("bus %s lost during scan: %s", bus_id, err)
                continue
            for dev in result.devices:
                if family is None or dev.family is family:
                    found[DeviceRef(bus_id, dev.unit)] = dev
        new = [ref for ref in found if ref not in self.devices]
        for ref, dev in found.items():
            known = self.devices.get(ref)
            if known is not None and known.serial != dev.serial:
                self._replaced.add(ref)  # another module wired in at this address
                new.append(ref)
            if not dev.serial:
                continue  # an unset serial says nothing about where a module went
            for other, seen in list(self.devices.items()):
                if other != ref and seen.serial == dev.serial and seen.kind is dev.kind:
                    del self.devices[other]  # re-addressed: it answers at ``ref`` now
                    self._moved[other] = ref
        self.devices.update(found)
        return new

    def take_changes(self) -> tuple[dict[DeviceRef, DeviceRef], set[DeviceRef]]:
        """(moved: old ref → new ref, replaced refs) since the last call."""
        changes = (self._moved, self._replaced)
        self._moved, self._replaced = {}, set()
        return changes

    def buses_without_devices(self) -> list[str]:
        with_devices = {ref.bus for ref in self.devices}
        return [bus for bus in self._bus_order if bus not in with_devices]

    def ordered(self, family: DeviceFamily) -> list[DeviceRef]:
        refs = [r for r, d in self.devices.items() if d.family is family]
        return sorted(refs, key=lambda r: (self._bus_order.get(r.bus, 99), r.unit))

    def device(self, ref: DeviceRef, family: DeviceFamily | None = None) -> DeviceIdentity:
        dev = self.devices.get(ref)
        if dev is None:
            raise KeyError(f"no device {ref}")
        if family is not None and dev.family is not family:
            raise ValueError(f"{ref} is a {dev.kind.name}, not a {family.value}")
        return dev

    def string_of_sensor(self, ref: DeviceRef) -> int | None:
        return next((s.index for s in self.strings if s.sensor == ref), None)

    def rebuild(self, cfg: ManagerConfig, equalization: bool, float_voltage: float | None) -> None:
        """Strings from the configuration (or the modules split evenly); a string whose
        modules did not change keeps its controller and charge history."""
        modules = self.ordered(DeviceFamily.BATTERY_MODULE)
        sensors = self.ordered(DeviceFamily.CURRENT_SENSOR)
        self.relays = self.ordered(DeviceFamily.RELAY)
        self.environment = self.ordered(DeviceFamily.ENVIRONMENT)
        self.sensors = sensors
        layout: list[tuple[str, list[DeviceRef], DeviceRef | None, float]] = []
        if cfg.strings:
            for s in cfg.strings:
                layout.append(
                    (s.name, list(s.modules), s.current_sensor, s.capacity_ah or cfg.capacity_ah)
                )
        elif modules:
            for k, part in enumerate(split_modules(modules, cfg.string_count, cfg.block_counts)):
                sensor = sensors[k] if k < len(sensors) else None
                layout.append((f"String {k + 1}", part, sensor, cfg.capacity_ah))
        old = {s.index: s for s in self.strings}
        strings: list[StringRuntime] = []
        for k, (name, refs, sensor, capacity) in enumerate(layout, 1):
            previous = old.get(k)
            if previous and previous.modules == refs:
                previous.sensor = sensor
                strings.append(previous)
                continue
            controller = EqualizationController(
                replace(cfg.equalization, enabled=equalization),
                float_voltage_override=float_voltage,
            )
            strings.append(
                StringRuntime(
                    k, name, refs, sensor, capacity, controller, ChargeStateTracker(capacity)
                )
            )
        self.strings = strings

    def breakers(self, cfg: ManagerConfig) -> tuple[Breaker, ...]:
        """The configured breakers (a breaker naming no string is common to all), or with
        ``auto``: relay module k, channel n opens string 4(k−1)+n, input n its feedback — for
        the relay modules found so far."""
        breakers = [Breaker(b.relay, b.channel, b.input, b.string) for b in cfg.trip.breakers]
        if cfg.trip.auto and not breakers:
            for k in range(len(self.strings)):
                relay_index, channel = divmod(k, RELAY_CHANNELS)
                if relay_index < len(self.relays):
                    breakers.append(
                        Breaker(self.relays[relay_index], channel + 1, channel + 1, k + 1)
                    )
        return tuple(breakers)


def split_modules(
    modules: list[DeviceRef], count: int, block_counts: tuple[int, ...] | None
) -> list[list[DeviceRef]]:
    """Modules into strings in unit order: by the configured block counts, or evenly. A
    module found beyond the counted ones joins the last string (it was added to it)."""
    if block_counts is None:
        n = min(count, len(modules))
        per = len(modules) // n
        return [
            modules[k * per : (k + 1) * per] if k < n - 1 else modules[k * per :] for k in range(n)
        ]
    parts: list[list[DeviceRef]] = []
    start = 0
    for k, size in enumerate(block_counts):
        end = len(modules) if k == len(block_counts) - 1 else start + size
        if start < len(modules):
            parts.append(modules[start:end])
        start = end
    return parts
