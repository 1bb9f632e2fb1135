"""BusClient: scan, poll and command the devices of one battery bus.

One request per device per poll cycle (its measurement block, read whole). A device that
fails yields a reading of quality MISSING; nothing one device does can raise out of a
poll or delay the others beyond its own timeout.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .. import registers as reg
from ..model import (
    CURRENT_SENSOR_RANGE_A,
    DIGITAL_INPUTS,
    FACTORY_UNIT_ID,
    MODULE_SPECS,
    RELAY_CHANNELS,
    Command,
    DeviceFamily,
    DeviceKind,
    Quality,
    Status,
)
from ..snapshot import MISSING, Value
from .errors import BusConnectionError, BusError, DeviceMissingError
from .readings import (
    AnyReading,
    CurrentReading,
    DeviceIdentity,
    EnvironmentReading,
    ModuleReading,
    RelayReading,
    UnknownDevice,
    missing_reading,
)
from .transport import RegisterTransport

_LOG = logging.getLogger(__name__)

TEMPERATURE_RANGE = (-35.0, 85.0)
HEATSINK_RANGE = (-35.0, 125.0)
HUMIDITY_RANGE = (0.0, 100.0)
HYDROGEN_RANGE = (0.0, 40000.0)
ACID_RANGE = (0.0, 150.0)


def _value(raw: float, lo: float, hi: float, valid: bool) -> Value:
    if not valid:
        return Value(None, Quality.MISSING)
    if not lo <= raw <= hi:
        return Value(raw, Quality.OUT_OF_RANGE)
    return Value(raw)


@dataclass
class _DeviceState:
    last_sequence: int | None = None
    unchanged: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class ScanResult:
    devices: tuple[DeviceIdentity, ...]
    unknown: tuple[UnknownDevice, ...]


class BusClient:
    """The manager's handle on one bus. Not thread-safe; one asyncio owner."""

    def __init__(
        self,
        transport: RegisterTransport,
        bus_id: str = "bus1",
        *,
        stale_polls: int = 3,
        window: int = 200,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.transport = transport
        self.bus_id = bus_id
        self.stale_polls = stale_polls
        self._states: dict[int, _DeviceState] = {}
        self._window: deque[bool] = deque(maxlen=window)
        self.requests = 0
        self.failures = 0
        self._backoff_min = backoff_min_s
        self._backoff_max = backoff_max_s
        self._backoff = backoff_min_s
        self._next_attempt = 0.0
        self.last_cycle_s: float | None = None
        self.last_error: str | None = None

    # -- connection ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.transport.connected

    async def connect(self) -> None:
        """Open the port now; raises BusConnectionError (or PortBusyError)."""
        await self.transport.connect()
        self._backoff = self._backoff_min
        self.last_error = None

    async def ensure_connected(self) -> bool:
        """Reconnect with jittered exponential backoff; never raises."""
        if self.transport.connected:
            return True
        now = time.monotonic()
        if now < self._next_attempt:
            return False
        try:
            await self.connect()
        except BusConnectionError as err:
            self.last_error = str(err)
            self._next_attempt = now + self._backoff * random.uniform(0.8, 1.2)
            self._backoff = min(self._backoff * 2, self._backoff_max)
            return False
        return True

    async def close(self) -> None:
        await self.transport.close()

    @property
    def link_quality(self) -> float:
        """% of the recent requests answered correctly (100 before any request)."""
        if not self._window:
            return 100.0
        return 100.0 * sum(self._window) / len(self._window)

    def consecutive_failures(self, unit: int) -> int:
        return self._states.get(unit, _DeviceState()).failures

    def _record(self, ok: bool) -> None:
        self.requests += 1
        self._window.append(ok)
        if not ok:
            self.failures += 1

    # -- discovery --------------------------------------------------------------------
    async def read_identity(
        self, unit: int, *, timeout: float | None = None, probe: bool = False
    ) -> DeviceIdentity:
        """``probe``: asking an address that may well be empty (a scan), so silence there is
        no sign of a bad link and is not counted in the link quality."""
        words = await self._read(
            unit, reg.IDENTIFICATION.start, reg.IDENTIFICATION.count, timeout, record=not probe
        )
        values = reg.IDENTIFICATION.decode(words)
        code = int(values["device_type"])
        try:
            kind = DeviceKind(code)
        except ValueError:
            raise DeviceMissingError(f"unit {unit}: unknown device type 0x{code:04x}") from None
        fw = int(values["firmware"])
        return DeviceIdentity(
            unit=unit,
            kind=kind,
            serial=int(values["serial"]),
            firmware=f"{fw >> 8}.{fw & 0xFF}",
            protocol_version=int(values["protocol_version"]),
            rating=int(values["rating"]),
        )

    async def _read(
        self, unit: int, address: int, count: int, timeout: float | None, *, record: bool = True
    ) -> list[int]:
        try:
            read = self.transport.read
            words = await (
                read(unit, address, count, timeout=timeout)
                if timeout
                else read(unit, address, count)
            )
        except BusError:
            if record:
                self._record(False)
            raise
        if record:
            self._record(True)
        return words

    async def scan(
        self, units: Iterable[int] = range(1, FACTORY_UNIT_ID + 1), *, timeout: float = 0.15
    ) -> ScanResult:
        """Which units answer, and as what. Sequential: one owner per port."""
        found: list[DeviceIdentity] = []
        unknown: list[UnknownDevice] = []
        for unit in units:
            try:
                found.append(await self.read_identity(unit, timeout=timeout, probe=True))
            except DeviceMissingError as err:
                code = int(str(err).rsplit("0x", 1)[-1], 16) if "0x" in str(err) else 0
                unknown.append(UnknownDevice(unit, code))
            except BusConnectionError:
                raise
            except BusError:
                continue
        return ScanResult(tuple(found), tuple(unknown))

    async def assign_address(self, new_unit: int, *, timeout: float = 0.5) -> DeviceIdentity:
        """Address a factory-fresh device whose button was pressed (docs/protocol.md)."""
        if not 1 <= new_unit < FACTORY_UNIT_ID:
            raise ValueError(f"unit {new_unit} is not assignable (1..{FACTORY_UNIT_ID - 1})")
        fresh = await self.read_identity(FACTORY_UNIT_ID, timeout=timeout)
        block = reg.measurement_block(fresh.kind)
        status = Status(
            int(
                block.decode(await self._read(FACTORY_UNIT_ID, block.start, block.count, timeout))[
                    "status"
                ]
            )
        )
        if Status.ADDRESS_MODE not in status:
            raise BusError("press the addressing button on the new device first")
        try:
            taken = await self.read_identity(new_unit, timeout=timeout, probe=True)
        except BusError:
            taken = None
        if taken is not None:
            raise BusError(f"unit {new_unit} is already used by a {taken.kind.name}")
        await self.transport.write(
            FACTORY_UNIT_ID,
            reg.ADDRESSING.start,
            reg.ADDRESSING.register("address").encode(new_unit),
        )
        moved = await self.read_identity(new_unit, timeout=timeout)
        if moved.serial != fresh.serial:
            raise BusError(
                f"unit {new_unit} answers with serial {moved.serial}, expected {fresh.serial}"
            )
        return moved

    # -- polling ------------------------------------------------------------------------
    async def poll(self, devices: Sequence[DeviceIdentity]) -> dict[int, AnyReading]:
        """One cycle: one request per device; never raises."""
        started = time.monotonic()
        out: dict[int, AnyReading] = {}
        if not await self.ensure_connected():
            for dev in devices:
                out[dev.unit] = self._failed(dev)
            return out
        for dev in devices:
            if not self.transport.connected:
                out[dev.unit] = self._failed(dev)
                continue
            block = reg.measurement_block(dev.kind)
            try:
                words = await self._read(dev.unit, block.start, block.count, None)
                values = block.decode(words)
            except BusConnectionError as err:
                self.last_error = str(err)
                _LOG.debug("bus %s lost: %s", self.bus_id, err)
                out[dev.unit] = self._failed(dev)
                continue
            except (BusError, reg.RegisterError) as err:
                _LOG.debug("bus %s unit %s: %s", self.bus_id, dev.unit, err)
                out[dev.unit] = self._failed(dev)
                continue
            out[dev.unit] = self._decode(dev, values)
        self.last_cycle_s = time.monotonic() - started
        return out

    def _failed(self, dev: DeviceIdentity) -> AnyReading:
        self._states.setdefault(dev.unit, _DeviceState()).failures += 1
        return missing_reading(dev)

    def _decode(self, dev: DeviceIdentity, values: Mapping[str, float]) -> AnyReading:
        state = self._states.setdefault(dev.unit, _DeviceState())
        state.failures = 0
        sequence = int(values["sequence"])
        if sequence == state.last_sequence:
            state.unchanged += 1
        else:
            state.unchanged = 0
        state.last_sequence = sequence
        status = Status(int(values["status"]) & sum(int(s) for s in Status))
        quality = Quality.STALE if state.unchanged >= self.stale_polls else Quality.OK
        valid = Status.MEASUREMENT_VALID in status
        head = (dev.unit, dev.kind, quality, status, sequence)

        def q(v: Value) -> Value:
            if quality is Quality.STALE and v.quality is Quality.OK:
                return Value(v.value, Quality.STALE)
            return v

        match dev.family:
            case DeviceFamily.BATTERY_MODULE:
                spec = MODULE_SPECS[dev.kind]
                return ModuleReading(
                    *head,
                    voltage=q(_value(values["voltage"], spec.v_min, spec.v_max, valid)),
                    resistance=q(
                        _value(values["resistance"], spec.ri_min_mohm, spec.ri_max_mohm, valid)
                    ),
                    temperature=q(_value(values["temperature"], *TEMPERATURE_RANGE, valid)),
                    balance_current=q(
                        _value(values["balance_current"], 0.0, spec.shunt_max_a * 1.05, True)
                    ),
                    module_temperature=q(
                        _value(values["module_temperature"], *HEATSINK_RANGE, True)
                    ),
                    ri_sequence=int(values["ri_sequence"]),
                )
            case DeviceFamily.CURRENT_SENSOR:
                full = CURRENT_SENSOR_RANGE_A[dev.kind]
                current = values["current"]
                cur = _value(current, -full, full, valid)
                if cur.quality is Quality.OK and abs(current) >= full:
                    cur = Value(current, Quality.OUT_OF_RANGE)  # saturated
                return CurrentReading(
                    *head,
                    current=q(cur),
                    temperature=q(_value(values["temperature"], *TEMPERATURE_RANGE, valid)),
                )
            case DeviceFamily.RELAY:
                relays = int(values["relays"])
                inputs = int(values["inputs"])
                return RelayReading(
                    *head,
                    relays=tuple(bool(relays >> n & 1) for n in range(RELAY_CHANNELS)),
                    inputs=tuple(bool(inputs >> n & 1) for n in range(DIGITAL_INPUTS)),
                )
            case _:
                return EnvironmentReading(
                    *head,
                    temperature=q(_value(values["temperature"], *TEMPERATURE_RANGE, valid)),
                    humidity=q(_value(values["humidity"], *HUMIDITY_RANGE, valid)),
                    hydrogen=q(_value(values["hydrogen"], *HYDROGEN_RANGE, valid)),
                    acid_level=q(_value(values["acid_level"], *ACID_RANGE, valid)),
                )

    # -- commands -----------------------------------------------------------------------
    async def write_values(self, dev: DeviceIdentity, values: Mapping[str, float]) -> None:
        """Write named control registers; validated against the table before anything is sent."""
        block = reg.control_block(dev.kind)
        encoded: dict[int, list[int]] = {}
        for name, value in values.items():
            r = block.register(name)
            encoded[r.address] = r.encode(value)
        addresses = sorted(encoded)
        # Contiguous registers go out in one request.
        run_start = addresses[0]
        run: list[int] = []
        expected = run_start
        for address in addresses:
            if address != expected:
                await self._write(dev.unit, run_start, run)
                run_start, run = address, []
            run.extend(encoded[address])
            expected = address + len(encoded[address])
        await self._write(dev.unit, run_start, run)

    async def _write(self, unit: int, address: int, words: list[int]) -> None:
        try:
            await self.transport.write(unit, address, words)
        except BusError:
            self._record(False)
            raise
        self._record(True)

    async def set_balance(self, dev: DeviceIdentity, amps: float) -> None:
        """Command a shunt current (also refreshes the module's watchdog)."""
        spec = MODULE_SPECS[dev.kind]
        await self.write_values(dev, {"balance_setpoint": max(0.0, min(amps, spec.shunt_max_a))})

    async def set_relays(self, dev: DeviceIdentity, relays: Sequence[bool]) -> None:
        bits = sum(1 << n for n, on in enumerate(relays) if on)
        await self.write_values(dev, {"relay_setpoint": bits})

    async def command(self, dev: DeviceIdentity, command: Command) -> None:
        await self.write_values(dev, {"command": int(command)})


__all__ = ["MISSING", "BusClient", "ScanResult"]
