"""BusClient: scan, poll and command the devices of one battery bus.

One request per device per poll cycle (its measurement block, read whole). A device that
fails yields a reading of quality MISSING; nothing one device does can raise out of a
poll or delay the others beyond its own timeout.

Answers are believed only when they hold up (``plausibility.py``): bits no device sets refuse
the answer, and on a wire a value that moved more than a poll explains is read again first;
one that the second read does not confirm is not passed on. A connection that drops in the
middle of a cycle is reopened at once (up to ``cycle_reconnects`` times), so the units after
the one that broke it are still read in that cycle.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .. import registers as reg
from ..model import (
    FACTORY_UNIT_ID,
    MODULE_SPECS,
    Command,
    DeviceKind,
    Quality,
    Status,
)
from ..snapshot import MISSING
from .decode import build_reading
from .errors import BadResponseError, BusConnectionError, BusError, DeviceMissingError
from .plausibility import agree, implausible, needs_confirmation
from .readings import AnyReading, DeviceIdentity, UnknownDevice, missing_reading
from .transport import RegisterTransport

_LOG = logging.getLogger(__name__)


@dataclass
class _DeviceState:
    last_sequence: int | None = None
    unchanged: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class ScanResult:
    devices: tuple[DeviceIdentity, ...]
    unknown: tuple[UnknownDevice, ...]


@dataclass(frozen=True, slots=True)
class BusStats:
    """Counters since the client was made (diagnostics, the fault benchmark)."""

    requests: int
    failures: int
    rejected: int  # answers refused: malformed, mismatched, implausible or unconfirmed
    rejected_by_unit: Mapping[int, int]
    confirmations: int  # second reads asked because a value jumped
    reconnects: int  # connections reopened in the middle of a cycle or a scan
    link_quality: float


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
        backoff_max_s: float = 5.0,
        cycle_reconnects: int = 2,
        confirm_changes: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``backoff_max_s`` stays below the poll interval, so a bus that returns is reopened
        on the next cycle. ``confirm_changes`` defaults to the transport's own view (on for
        a wire, off for the in-process simulator)."""
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
        self.clock = clock  # backoff time; the manager's clock when it is simulated
        self.cycle_reconnects = cycle_reconnects
        if confirm_changes is None:
            confirm_changes = bool(getattr(transport, "confirm_changes", False))
        self.confirm_changes = confirm_changes
        self._accepted: dict[int, dict[str, float]] = {}
        self._rejected: Counter[int] = Counter()
        self._seen_transport_rejections = 0
        self.confirmations = 0
        self.reconnects = 0
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
        self._next_attempt = 0.0
        self.last_error = None

    async def ensure_connected(self) -> bool:
        """Reconnect with jittered exponential backoff; never raises."""
        if self.transport.connected:
            return True
        now = self.clock()
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

    async def _reopen(self) -> bool:
        """A connection lost mid-cycle: open it again at once (once per loss, no backoff)."""
        self._next_attempt = 0.0
        if await self.ensure_connected():
            self.reconnects += 1
            return True
        return False

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

    def rejected_frames(self, unit: int | None = None) -> int:
        """Answers refused (by the transport's frame checks or by plausibility)."""
        counts = self._rejected_counts()
        return sum(counts.values()) if unit is None else counts.get(unit, 0)

    def _rejected_counts(self) -> Counter[int]:
        counts = Counter(self._rejected)
        counts.update(getattr(self.transport, "rejected", None) or {})
        return counts

    def stats(self) -> BusStats:
        counts = self._rejected_counts()
        return BusStats(
            self.requests,
            self.failures,
            sum(counts.values()),
            dict(counts),
            self.confirmations,
            self.reconnects,
            self.link_quality,
        )

    def _record(self, ok: bool) -> None:
        # An answer the transport refused and retried is a bad exchange too.
        seen = sum((getattr(self.transport, "rejected", None) or {}).values())
        for _ in range(max(0, seen - self._seen_transport_rejections)):
            self._window.append(False)
            self.requests += 1
            self.failures += 1
        self._seen_transport_rejections = seen
        self.requests += 1
        self._window.append(ok)
        if not ok:
            self.failures += 1

    def _refuse(self, unit: int, reason: str) -> BadResponseError:
        self._rejected[unit] += 1
        self._window.append(False)
        _LOG.debug("bus %s unit %s: refused answer: %s", self.bus_id, unit, reason)
        return BadResponseError(f"unit {unit}: {reason}")

    # -- discovery --------------------------------------------------------------------
    async def read_identity(
        self, unit: int, *, timeout: float | None = None, probe: bool = False
    ) -> DeviceIdentity:
        """``probe``: asking an address that may well be empty (a scan), so silence there is
        no sign of a bad link and is not counted in the link quality. On a wire the
        identification is read twice and must agree: a kind or serial is never guessed."""
        block = reg.IDENTIFICATION
        words = await self._read(unit, block.start, block.count, timeout, record=not probe)
        if self.confirm_changes:
            again = await self._read(unit, block.start, block.count, timeout, record=not probe)
            if again != words:
                raise self._refuse(unit, "identification differs between two reads")
        values = block.decode(words)
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
        """Which units answer, and as what. Sequential: one owner per port. A connection
        lost mid-scan is reopened (up to ``cycle_reconnects`` times) and the unit asked again."""
        found: list[DeviceIdentity] = []
        unknown: list[UnknownDevice] = []
        reopen = self.cycle_reconnects
        for unit in units:
            for _ in range(2):
                try:
                    found.append(await self.read_identity(unit, timeout=timeout, probe=True))
                except DeviceMissingError as err:
                    code = int(str(err).rsplit("0x", 1)[-1], 16) if "0x" in str(err) else 0
                    unknown.append(UnknownDevice(unit, code))
                except BusConnectionError:
                    if reopen <= 0 or not await self._reopen():
                        raise
                    reopen -= 1
                    continue
                except BusError:
                    pass
                break
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
        """One cycle: one request per device (two when a value must be confirmed);
        never raises."""
        started = time.monotonic()
        out: dict[int, AnyReading] = {}
        down = not await self.ensure_connected()
        reopen = self.cycle_reconnects
        for dev in devices:
            reading: AnyReading | None = None
            for _ in range(2):
                if down:
                    break
                if not self.transport.connected:
                    if reopen <= 0 or not await self._reopen():
                        down = True
                        break
                    reopen -= 1
                try:
                    reading = self._decode(dev, await self._measure(dev))
                except BusConnectionError as err:
                    self.last_error = str(err)
                    _LOG.debug("bus %s lost at unit %s: %s", self.bus_id, dev.unit, err)
                    continue  # reopen and ask this unit again
                except (BusError, reg.RegisterError) as err:
                    _LOG.debug("bus %s unit %s: %s", self.bus_id, dev.unit, err)
                break
            out[dev.unit] = reading if reading is not None else self._failed(dev)
        self.last_cycle_s = time.monotonic() - started
        return out

    async def _measure(self, dev: DeviceIdentity) -> dict[str, float]:
        """The device's measurement block, believed: plausible, and confirmed if it jumped."""
        block = reg.measurement_block(dev.kind)
        values = await self._read_block(dev.unit, block)
        if not self.confirm_changes:
            return values
        previous = self._accepted.get(dev.unit)
        moved = needs_confirmation(previous, values) if previous else "first answer"
        if moved:
            self.confirmations += 1
            again = await self._read_block(dev.unit, block)
            if not agree(values, again) and not (previous and agree(previous, again)):
                raise self._refuse(dev.unit, f"{moved} not confirmed by a second read")
            if not agree(values, again):
                self._refuse(dev.unit, f"{moved} was a one-read glitch")
            values = again
        self._accepted[dev.unit] = values
        return values

    async def _read_block(self, unit: int, block: reg.Block) -> dict[str, float]:
        values = block.decode(await self._read(unit, block.start, block.count, None))
        if problem := implausible(values):
            raise self._refuse(unit, problem)
        return values

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
        quality = Quality.STALE if state.unchanged >= self.stale_polls else Quality.OK
        return build_reading(dev, values, quality)

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


__all__ = ["MISSING", "BusClient", "BusStats", "ScanResult"]
