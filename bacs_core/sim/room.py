"""A simulated battery room: strings on chargers, their bus devices, faults and a clock.

Wiring (docs/simulator.md): every string has a current sensor; relay module k (one per
four strings) energises relay n to open the breaker of its n-th string (shunt trip) and
reads that breaker's auxiliary contact on digital input n (closed = breaker closed). An
open breaker stays open until a person closes it (``close_breaker``), or, with
``auto_reclose``, until the relay is de-energised (motor-operated breaker).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

from ..model import (
    FACTORY_UNIT_ID,
    MODULE_SPECS,
    RELAY_CHANNELS,
    DeviceKind,
)
from .devices import (
    BatteryModuleDevice,
    CurrentSensorDevice,
    EnvironmentDevice,
    ModbusDeviceError,
    RelayDevice,
    SimDevice,
    make_device,
)
from .physics import ChargerMode, PlantOptions, StringPhysics, make_string
from .sensing import ModuleCalibration, SensingOptions, measure

MAX_DEVICES_PER_BUS = 240
MEASURE_INTERVAL_S = 1.0


class FaultKind(StrEnum):
    WEAK = "weak"  # aged block: capacity ×0.75, resistance ×1.4
    HIGH = "high"  # high-voltage outlier: I0 ÷ 20
    LOW = "low"  # low-voltage outlier: I0 × 20
    SOFT_SHORT = "soft_short"  # value = self-discharge amps
    SHORTED_CELL = "shorted_cell"
    LOOSE = "loose"  # value = resistance factor
    RUNAWAY = "runaway"  # value = severity
    DEAD = "dead"  # the module stops answering
    NOISE = "noise"  # value = voltage noise sigma (V)
    STUCK = "stuck"  # sequence and values freeze
    TIMEOUTS = "timeouts"  # value = probability a request gets no answer (bus)
    CRC = "crc"  # value = probability an answer is corrupted (bus)
    GARBAGE = "garbage"  # value = probability of garbage bytes before an answer (bus)
    VANISH = "vanish"  # value = seconds the port is gone (bus)
    BREAKER_STUCK = "breaker_stuck"  # the string's breaker does not open


BUS_FAULTS = {FaultKind.TIMEOUTS, FaultKind.CRC, FaultKind.GARBAGE, FaultKind.VANISH}


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    string: int = 1  # 1-based; the bus index (1-based) for bus faults
    block: int = 1  # 1-based position in the string
    value: float = 0.0
    at_s: float = 0.0  # simulated time at which it starts

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``kind[:string[:block]][=value][@seconds]``, e.g. ``runaway:1:12=2@600``."""
        spec = text
        at = 0.0
        if "@" in text:
            text, at_text = text.rsplit("@", 1)
            at = _finite(at_text, spec, "@seconds")
        value = 0.0
        if "=" in text:
            text, value_text = text.split("=", 1)
            value = _finite(value_text, spec, "=value")
        parts = text.split(":")
        try:
            kind = FaultKind(parts[0])
        except ValueError:
            choices = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault {parts[0]!r}; choose from {choices}") from None
        if len(parts) > 3 or not all(p.isdigit() and int(p) >= 1 for p in parts[1:]):
            raise ValueError(f"fault {spec!r}: write kind[:string[:block]] with numbers from 1")
        string = int(parts[1]) if len(parts) > 1 else 1
        block = int(parts[2]) if len(parts) > 2 else 1
        if kind in BUS_FAULTS and not value:
            value = {FaultKind.VANISH: 5.0}.get(kind, 0.05)
        return cls(kind, string, block, value, at)


def _finite(text: str, spec: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"fault {spec!r}: {what} must be a number ≥ 0, not {text!r}")
    return value


class Scenario(StrEnum):
    FLOAT = "float"
    DISCHARGE = "discharge"
    THERMAL_RUNAWAY = "thermal-runaway"


@dataclass(frozen=True, slots=True)
class RoomConfig:
    strings: int = 2
    blocks: int = 32
    kind: DeviceKind = DeviceKind.C20
    capacity_ah: float = 100.0
    spread: float = 0.6
    seed: int = 1
    ambient_c: float = 25.0
    current_sensor: DeviceKind = DeviceKind.CS200
    environment: bool = True
    buses: int = 0  # 0 = as many as needed for whole strings of ≤ 240 devices each
    scenario: Scenario = Scenario.FLOAT
    faults: tuple[Fault, ...] = ()
    auto_reclose: bool = False
    noise_v: float = 0.002  # module measurement noise (σ)
    settle_days: float = 0.0  # simulated days of float before the room starts
    offset_v: float = 0.0  # per-module voltage offset, uniform in ±offset_v
    gain_error: float = 0.0  # per-module gain error, uniform in ±gain_error
    ripple_v: float = 0.0  # charger ripple seen by the modules (amplitude)
    plant: PlantOptions = field(default_factory=PlantOptions)  # lag, Tafel slope, …

    @property
    def sensing(self) -> SensingOptions:
        return SensingOptions(self.noise_v, self.offset_v, self.gain_error, self.ripple_v)

    def __post_init__(self) -> None:
        if not 1 <= self.strings <= 64:
            raise ValueError("strings must be 1..64")
        if not 1 <= self.blocks <= 240:
            raise ValueError("blocks per string must be 1..240")
        if self.kind not in MODULE_SPECS:
            raise ValueError(f"{self.kind.name} is not a battery module kind")
        if self.capacity_ah <= 0:
            raise ValueError("capacity must be positive")


@dataclass
class WireFaults:
    timeout_p: float = 0.0
    crc_p: float = 0.0
    garbage_p: float = 0.0
    vanished_until: float = -1.0


class NoAnswer(Exception):
    """The request gets no answer at all (dead module, unused unit, injected timeout)."""


@dataclass
class SimBus:
    index: int  # 0-based
    devices: dict[int, SimDevice] = field(default_factory=dict)
    faults: WireFaults = field(default_factory=WireFaults)
    dead: set[int] = field(default_factory=set)
    now: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    requests: int = 0

    @property
    def vanished(self) -> bool:
        return self.now < self.faults.vanished_until

    def device(self, unit: int) -> SimDevice:
        dev = self.devices.get(unit)
        if dev is None or unit in self.dead:
            raise NoAnswer(f"no device at unit {unit}")
        return dev

    def read(self, unit: int, address: int, count: int) -> list[int]:
        self.requests += 1
        return self.device(unit).read(address, count)

    def write(self, unit: int, address: int, values: Sequence[int]) -> None:
        self.requests += 1
        dev = self.device(unit)
        moved = dev.write(address, values)
        if moved is not None and moved != unit:
            if moved in self.devices:
                dev.unit = unit
                raise ModbusDeviceError(3, f"unit {moved} is taken")
            del self.devices[unit]
            self.devices[moved] = dev

    def wire_fault(self) -> str | None:
        """Decide the fate of one exchange: None, 'timeout', 'crc' or 'garbage'."""
        f = self.faults
        roll = self.rng.random()
        if roll < f.timeout_p:
            return "timeout"
        roll -= f.timeout_p
        if roll < f.crc_p:
            return "crc"
        roll -= f.crc_p
        if roll < f.garbage_p:
            return "garbage"
        return None


@dataclass
class SimString:
    index: int  # 1-based
    physics: StringPhysics
    modules: list[BatteryModuleDevice]
    sensor: CurrentSensorDevice
    relay: RelayDevice
    channel: int  # 0-based relay channel and digital input
    bus: SimBus
    breaker_stuck: bool = False
    noise_v: list[float] = field(default_factory=list)
    calibration: list[ModuleCalibration] = field(default_factory=list)


class Room:
    """The whole simulated installation. Deterministic for a seed."""

    def __init__(self, config: RoomConfig | None = None) -> None:
        self.config = config = config or RoomConfig()
        self.rng = random.Random(config.seed)
        calibration_rng = random.Random(config.seed * 31 + 17)  # leaves the noise draws alone
        self.time_s = 0.0
        self.speed = 1.0  # simulated seconds per real second while ``run`` drives it
        self._next_tick = 0.0
        self._serial = 100000 + config.seed * 1000
        n_buses = config.buses or self._buses_needed()
        self.buses = [SimBus(i, rng=random.Random(config.seed * 7919 + i)) for i in range(n_buses)]
        per_bus = math.ceil(config.strings / n_buses)
        self.strings: list[SimString] = []
        self.environment: EnvironmentDevice | None = None
        cells = MODULE_SPECS[config.kind].cells
        for b, bus in enumerate(self.buses):
            first = b * per_bus
            indices = list(range(first, min(first + per_bus, config.strings)))
            unit = 1
            physics: list[StringPhysics] = []
            modules: list[list[BatteryModuleDevice]] = []
            for s in indices:
                params = make_string(
                    config.blocks,
                    cells,
                    config.capacity_ah,
                    config.spread,
                    config.seed * 101 + s,
                    plant=config.plant,
                )
                physics.append(StringPhysics(params, config.ambient_c))
                row: list[BatteryModuleDevice] = []
                for _ in range(config.blocks):
                    dev = make_device(config.kind, self._next_serial(), unit)
                    assert isinstance(dev, BatteryModuleDevice)
                    bus.devices[unit] = dev
                    row.append(dev)
                    unit += 1
                modules.append(row)
            sensors: list[CurrentSensorDevice] = []
            for _ in indices:
                dev = make_device(config.current_sensor, self._next_serial(), unit)
                assert isinstance(dev, CurrentSensorDevice)
                bus.devices[unit] = dev
                sensors.append(dev)
                unit += 1
            relays: list[RelayDevice] = []
            for _ in range(math.ceil(len(indices) / RELAY_CHANNELS)):
                dev = make_device(DeviceKind.GX_R_AUX, self._next_serial(), unit)
                assert isinstance(dev, RelayDevice)
                bus.devices[unit] = dev
                relays.append(dev)
                unit += 1
            if config.environment and b == 0:
                env = make_device(DeviceKind.ENVIRONMENT, self._next_serial(), unit)
                assert isinstance(env, EnvironmentDevice)
                bus.devices[unit] = env
                self.environment = env
                unit += 1
            for k, s in enumerate(indices):
                self.strings.append(
                    SimString(
                        s + 1,
                        physics[k],
                        modules[k],
                        sensors[k],
                        relays[k // RELAY_CHANNELS],
                        k % RELAY_CHANNELS,
                        bus,
                        noise_v=[config.noise_v] * config.blocks,
                        calibration=[
                            ModuleCalibration.draw(config.sensing, calibration_rng)
                            for _ in range(config.blocks)
                        ],
                    )
                )
        self._pending = sorted(config.faults, key=lambda f: f.at_s)
        if config.settle_days > 0:
            self._settle(config.settle_days)
        self._apply_scenario()
        self._apply_due_faults()
        self._sync_devices()

    def _buses_needed(self) -> int:
        c = self.config
        per_string = c.blocks + 1
        total = c.strings * per_string + math.ceil(c.strings / RELAY_CHANNELS) + 1
        return max(1, math.ceil(total / MAX_DEVICES_PER_BUS))

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def _settle(self, days: float) -> None:
        """Age the float imbalance without the bus: the spread a real room shows on day one."""
        for s in self.strings:
            for _ in range(round(days * 24 * 12)):
                s.physics.step(300.0)

    def _apply_scenario(self) -> None:
        scenario = self.config.scenario
        if scenario is Scenario.DISCHARGE:
            for s in self.strings:
                self.set_mode(s.index, ChargerMode.DISCHARGE, self.config.capacity_ah / 10.0)
        elif scenario is Scenario.THERMAL_RUNAWAY:
            block = min(12, self.config.blocks)
            self._pending.append(Fault(FaultKind.RUNAWAY, 1, block, 3.0, 60.0))
            self._pending.sort(key=lambda f: f.at_s)

    # -- public control -------------------------------------------------------------
    def string(self, index: int) -> SimString:
        for s in self.strings:
            if s.index == index:
                return s
        raise ValueError(f"no string {index}")

    def set_mode(self, string: int, mode: ChargerMode, load_a: float = 0.0) -> None:
        s = self.string(string)
        s.physics.mode = mode
        s.physics.load_a = load_a

    def set_scenario(self, scenario: Scenario) -> None:
        for s in self.strings:
            if scenario is Scenario.DISCHARGE:
                self.set_mode(s.index, ChargerMode.DISCHARGE, self.config.capacity_ah / 10.0)
            else:
                self.set_mode(s.index, ChargerMode.FLOAT)
        if scenario is Scenario.THERMAL_RUNAWAY:
            self.inject(Fault(FaultKind.RUNAWAY, 1, min(12, self.config.blocks), 3.0))

    def close_breaker(self, string: int) -> None:
        """A person closes the breaker again (refused while its trip relay is energised)."""
        s = self.string(string)
        if s.relay.relays[s.channel]:
            raise ValueError(f"string {string}: trip relay still energised")
        s.physics.breaker_closed = True
        self._sync_devices()

    def press_button(self, bus: int, unit: int) -> None:
        self.buses[bus].devices[unit].press_button()

    def add_factory_device(self, bus: int, kind: DeviceKind) -> SimDevice:
        """A new device wired in, answering on the factory address until addressed."""
        dev = make_device(kind, self._next_serial(), FACTORY_UNIT_ID)
        self.buses[bus].devices[FACTORY_UNIT_ID] = dev
        return dev

    def inject(self, fault: Fault) -> None:
        if fault.at_s > self.time_s:
            self._pending.append(fault)
            self._pending.sort(key=lambda f: f.at_s)
        else:
            self._apply(fault)

    def clear_fault(self, fault: Fault) -> None:
        """End a fault that can end: a runaway (the block cools by the physics), a stuck
        breaker, a silent or frozen module, noise, a bus fault. A fault still pending is
        dropped. Damage (weak, outlier, short, loose) stays: replace the block."""
        where = (fault.kind, fault.string, fault.block)
        pending = [f for f in self._pending if (f.kind, f.string, f.block) == where]
        self._pending = [f for f in self._pending if f not in pending]
        if fault.kind in BUS_FAULTS:
            bus = self.buses[max(0, min(fault.string - 1, len(self.buses) - 1))]
            if fault.kind is FaultKind.TIMEOUTS:
                bus.faults.timeout_p = 0.0
            elif fault.kind is FaultKind.CRC:
                bus.faults.crc_p = 0.0
            elif fault.kind is FaultKind.GARBAGE:
                bus.faults.garbage_p = 0.0
            else:
                bus.faults.vanished_until = self.time_s
            return
        s = self.string(fault.string)
        if fault.kind is FaultKind.BREAKER_STUCK:
            s.breaker_stuck = False
            return
        i = fault.block - 1
        if not 0 <= i < len(s.modules):
            raise ValueError(f"string {fault.string} has no block {fault.block}")
        match fault.kind:
            case FaultKind.RUNAWAY:
                if not s.physics.end_runaway(i) and not pending:
                    raise ValueError(f"no runaway in string {fault.string} block {fault.block}")
            case FaultKind.DEAD:
                s.bus.dead.discard(s.modules[i].unit)
            case FaultKind.NOISE:
                s.noise_v[i] = self.config.noise_v
            case FaultKind.STUCK:
                s.modules[i].frozen = False
            case _:
                raise ValueError(
                    f"{fault.kind.value} is damage that does not clear: replace the block"
                )

    def _apply_due_faults(self) -> None:
        while self._pending and self._pending[0].at_s <= self.time_s:
            self._apply(self._pending.pop(0))

    def _apply(self, f: Fault) -> None:
        if f.kind in BUS_FAULTS:
            bus = self.buses[max(0, min(f.string - 1, len(self.buses) - 1))]
            if f.kind is FaultKind.TIMEOUTS:
                bus.faults.timeout_p = f.value
            elif f.kind is FaultKind.CRC:
                bus.faults.crc_p = f.value
            elif f.kind is FaultKind.GARBAGE:
                bus.faults.garbage_p = f.value
            else:
                bus.faults.vanished_until = self.time_s + f.value
            return
        s = self.string(f.string)
        if f.kind is FaultKind.BREAKER_STUCK:
            s.breaker_stuck = True
            return
        i = f.block - 1
        if not 0 <= i < len(s.modules):
            raise ValueError(f"string {f.string} has no block {f.block}")
        p = s.physics
        match f.kind:
            case FaultKind.WEAK:
                p.age_block(i, 0.75, 1.4)
            case FaultKind.HIGH:
                p.set_i0_factor(i, 1 / 20)
            case FaultKind.LOW:
                p.set_i0_factor(i, 20.0)
            case FaultKind.SOFT_SHORT:
                p.soft_short(i, f.value or 0.25)
            case FaultKind.SHORTED_CELL:
                p.shorted_cell(i)
            case FaultKind.LOOSE:
                p.loose_connection(i, f.value or 5.0)
            case FaultKind.RUNAWAY:
                p.thermal_runaway(i, f.value or 1.0)
            case FaultKind.DEAD:
                s.bus.dead.add(s.modules[i].unit)
            case FaultKind.NOISE:
                s.noise_v[i] = f.value or 0.05
            case FaultKind.STUCK:
                s.modules[i].frozen = True

    # -- time -------------------------------------------------------------------------
    def step(self, dt_s: float) -> None:
        """Advance the room by dt_s seconds of simulated time."""
        self.time_s += dt_s
        self._apply_due_faults()
        for s in self.strings:
            for dev in s.modules:
                dev.now = self.time_s
            s.physics.shunt_a = [dev.shunt_current() for dev in s.modules]
            self._drive_breaker(s)
            s.physics.step(dt_s)
        for bus in self.buses:
            bus.now = self.time_s
        self._sync_devices()

    def _drive_breaker(self, s: SimString) -> None:
        energised = s.relay.relays[s.channel]
        if energised and not s.breaker_stuck:
            s.physics.breaker_closed = False
        elif not energised and self.config.auto_reclose:
            s.physics.breaker_closed = True

    def _sync_devices(self) -> None:
        tick = self.time_s >= self._next_tick
        if tick:
            self._next_tick = self.time_s + MEASURE_INTERVAL_S
        for s in self.strings:
            p = s.physics
            for i, dev in enumerate(s.modules):
                if not dev.frozen:
                    dev.voltage = measure(
                        p.voltages[i],
                        s.calibration[i],
                        s.noise_v[i],
                        self.config.ripple_v,
                        self.rng,
                    )
                    dev.temperature = p.temperatures[i]
                    dev.resistance_mohm = p.resistance_mohm(i)
                    shunt_w = dev.shunt_current() * p.voltages[i]
                    dev.module_temperature = p.temperatures[i] + 3.0 * shunt_w
                if tick:
                    dev.tick(self.time_s)
            if not s.sensor.frozen:
                s.sensor.current = p.string_current_a
                s.sensor.temperature = p.ambient_c
            s.relay.inputs[s.channel] = p.breaker_closed
            if tick:
                s.sensor.tick(self.time_s)
                s.relay.tick(self.time_s)
        if self.environment is not None:
            env = self.environment
            env.temperature = self.strings[0].physics.ambient_c
            env.hydrogen_ppm = self._hydrogen_ppm()
            if tick:
                env.tick(self.time_s)

    def _hydrogen_ppm(self) -> float:
        """VRLA vents ~1–5 % of overcharge as gas; 0.42 L H2 per Ah per cell; 30 m³ room, 1 ACH."""
        litres_per_h = 0.0
        for s in self.strings:
            p = s.physics
            for i in range(p.n):
                litres_per_h += 0.42 * max(p.block_currents[i], 0.0) * p.blocks[i].cells * 0.02
        return 2.0 + litres_per_h / 30000.0 * 1e6

    async def run(self, speed: float = 1.0, tick_s: float = 0.2) -> None:
        """Step in real time × speed until cancelled."""
        self.speed = speed
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(tick_s)
            now = loop.time()
            dt = (now - last) * speed
            last = now
            while dt > 0:
                chunk = min(dt, 30.0)
                self.step(chunk)
                dt -= chunk


def room_from_url(url: str) -> Room:
    """``sim://NAME?strings=2&blocks=32&kind=C20&capacity=100&seed=1&fault=weak:1:7``."""
    parts = urlsplit(url)
    if parts.scheme != "sim":
        raise ValueError(f"not a simulator URL: {url}")
    query = parse_qs(parts.query)

    def one(key: str, default: str) -> str:
        return query.get(key, [default])[-1]

    try:
        kind = DeviceKind[one("kind", "C20").upper()]
        config = RoomConfig(
            strings=int(one("strings", "2")),
            blocks=int(one("blocks", "32")),
            kind=kind,
            capacity_ah=float(one("capacity", "100")),
            spread=float(one("spread", "0.6")),
            seed=int(one("seed", "1")),
            scenario=Scenario(one("scenario", "float")),
            faults=tuple(Fault.parse(f) for f in query.get("fault", [])),
            auto_reclose=one("auto_reclose", "1") not in ("0", "false", "no"),
            settle_days=float(one("settle_days", "2")),
            buses=int(one("buses", "0")),
            noise_v=float(one("noise", "0.002")),
            offset_v=float(one("offset", "0")),
            gain_error=float(one("gain_error", "0")),
            ripple_v=float(one("ripple", "0")),
            plant=PlantOptions(
                lag_s=float(one("lag_min", "20")) * 60.0,
                tafel_factor=float(one("tafel", "1")),
                slow_fraction=float(one("slow", "0")),
                rack_gradient_c=float(one("gradient", "0")),
            ),
        )
    except KeyError as err:
        raise ValueError(f"unknown module kind {err}") from None
    return Room(config)
