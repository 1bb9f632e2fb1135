"""Simulated bus devices: each one's register image, built only from registers.py.

The room sets the physical values (``present``); the device turns them into the words a
real module would serve, and applies what the manager writes (setpoints, commands,
addressing) with the device-side rules: shunt limit, watchdog, identify, Ri measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
    Status,
)

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3

RI_MEASURE_S = 3.0
IDENTIFY_S = 30.0
DEFAULT_WATCHDOG_S = 60
SHUNT_DERATE_START_C = 60.0
SHUNT_DERATE_END_C = 85.0


class ModbusDeviceError(Exception):
    """The device answers with a Modbus exception code."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class SimDevice:
    """Common register behaviour. Subclasses fill the measurement and control values."""

    kind: DeviceKind
    serial: int
    unit: int
    firmware: int = 0x0102
    sequence: int = 0
    status: Status = Status.MEASUREMENT_VALID
    address_mode: bool = False
    identify_until: float = -1.0
    now: float = 0.0
    control: dict[str, float] = field(default_factory=dict)
    frozen: bool = False  # a stuck sensor: sequence and values stop moving

    def __post_init__(self) -> None:
        block = reg.control_block(self.kind)
        self.control = {r.name: 0.0 for r in block.registers}
        if "watchdog" in self.control:
            self.control["watchdog"] = DEFAULT_WATCHDOG_S

    @property
    def family(self) -> DeviceFamily:
        return self.kind.family

    def rating(self) -> int:
        if self.family is DeviceFamily.BATTERY_MODULE:
            return round(MODULE_SPECS[self.kind].shunt_max_a * 1000)
        if self.family is DeviceFamily.CURRENT_SENSOR:
            return round(CURRENT_SENSOR_RANGE_A[self.kind])
        return 0

    def press_button(self) -> None:
        """The addressing button: arms the device to accept a new unit id."""
        self.address_mode = True

    def tick(self, now: float) -> None:
        """Advance device time; a new measurement increments the sequence counter."""
        self.now = now
        if not self.frozen:
            self.sequence = (self.sequence + 1) & 0xFFFF

    def measurement_values(self) -> dict[str, float]:
        raise NotImplementedError

    def status_bits(self) -> Status:
        bits = self.status
        if self.address_mode:
            bits |= Status.ADDRESS_MODE
        if self.now < self.identify_until:
            bits |= Status.IDENTIFY
        return bits

    def _block_values(self, block: reg.Block) -> dict[str, float]:
        if block is reg.IDENTIFICATION:
            return {
                "device_type": int(self.kind),
                "protocol_version": 1,
                "firmware": self.firmware,
                "serial": self.serial,
                "rating": self.rating(),
            }
        if block is reg.ADDRESSING:
            return {"address": self.unit}
        if block is reg.control_block(self.kind):
            return dict(self.control)
        values = self.measurement_values()
        values["sequence"] = self.sequence
        values["status"] = int(self.status_bits())
        return values

    def _encode_block(self, block: reg.Block) -> list[int]:
        values = self._block_values(block)
        words: list[int] = []
        for r in block.registers:
            lo, hi = r.raw_bounds()
            raw = max(lo, min(hi, round(values[r.name] / r.scale)))
            words.extend(_raw_words(r, raw))  # saturate like a real converter
        return words

    def read(self, address: int, count: int) -> list[int]:
        for block in reg.blocks_for(self.kind):
            end = block.start + block.count
            if block.start <= address and address + count <= end and count > 0:
                words = self._encode_block(block)
                return words[address - block.start : address - block.start + count]
        raise ModbusDeviceError(ILLEGAL_ADDRESS, f"no readable block at {address}+{count}")

    def write(self, address: int, words: Sequence[int]) -> int | None:
        """Apply a write. Returns a new unit id when the device moved (addressing)."""
        if address == reg.ADDRESSING.start and len(words) == 1:
            if not self.address_mode:
                raise ModbusDeviceError(ILLEGAL_VALUE, "addressing button not pressed")
            new = words[0]
            lo, hi = reg.ADDRESSING.registers[0].minimum, reg.ADDRESSING.registers[0].maximum
            if not (lo is not None and hi is not None and lo <= new <= hi):
                raise ModbusDeviceError(ILLEGAL_VALUE, f"unit {new} out of range")
            self.address_mode = False
            self.unit = new
            return new
        block = reg.control_block(self.kind)
        if not (block.start <= address and address + len(words) <= block.start + block.count):
            raise ModbusDeviceError(ILLEGAL_ADDRESS, f"no writable block at {address}")
        updates: dict[str, float] = {}
        for r in block.registers:
            offset = r.address - address
            if 0 <= offset < len(words):
                value = r.decode(words[offset : offset + r.words])
                if (r.minimum is not None and value < r.minimum) or (
                    r.maximum is not None and value > r.maximum
                ):
                    raise ModbusDeviceError(ILLEGAL_VALUE, f"{r.name}={value} refused")
                updates[r.name] = value
        command = int(updates.get("command", Command.NONE))
        if command not in self.supported_commands():
            # Refused whole: a device never half-applies a write it answers with an exception.
            raise ModbusDeviceError(ILLEGAL_VALUE, f"{self.kind.name} has no command {command}")
        self.apply_control(updates)
        return None

    def supported_commands(self) -> frozenset[int]:
        """What the ``command`` register accepts on this kind (registers.py descriptions)."""
        return frozenset({Command.NONE, Command.IDENTIFY, Command.CLEAR_FAULTS})

    def apply_control(self, updates: dict[str, float]) -> None:
        command = int(updates.pop("command", 0))
        self.control.update(updates)
        self.control["command"] = 0
        if command == Command.IDENTIFY:
            self.identify_until = self.now + IDENTIFY_S
        elif command == Command.CLEAR_FAULTS:
            self.status &= ~(Status.WIRING_FAULT | Status.WATCHDOG_EXPIRED)
        elif command not in self.supported_commands():
            raise ModbusDeviceError(ILLEGAL_VALUE, f"unknown command {command}")
        self.on_command(command)

    def on_command(self, command: int) -> None:
        """Hook for family-specific commands."""


def _raw_words(r: reg.Register, raw: int) -> list[int]:
    if raw < 0:
        raw += 1 << (16 * r.words)
    if r.words == 2:
        return [(raw >> 16) & 0xFFFF, raw & 0xFFFF]
    return [raw & 0xFFFF]


@dataclass
class BatteryModuleDevice(SimDevice):
    voltage: float = 0.0
    resistance_mohm: float = 0.0
    temperature: float = 25.0
    module_temperature: float = 25.0
    ri_sequence: int = 0
    measured_resistance: float = 0.0
    ri_done_at: float = -1.0
    setpoint_written_at: float = 0.0
    noise_v: float = 0.0

    @property
    def shunt_max(self) -> float:
        return MODULE_SPECS[self.kind].shunt_max_a

    def shunt_current(self) -> float:
        """What the shunt actually draws: clamped, derated when hot, off when the watchdog bites."""
        watchdog = self.control.get("watchdog", DEFAULT_WATCHDOG_S)
        setpoint = self.control.get("balance_setpoint", 0.0)
        if setpoint > 0 and self.now - self.setpoint_written_at > watchdog:
            self.status |= Status.WATCHDOG_EXPIRED
            self.control["balance_setpoint"] = 0.0
            setpoint = 0.0
        limit = self.shunt_max
        if self.module_temperature > SHUNT_DERATE_START_C:
            span = SHUNT_DERATE_END_C - SHUNT_DERATE_START_C
            limit *= max(0.0, 1.0 - (self.module_temperature - SHUNT_DERATE_START_C) / span)
            self.status |= Status.OVER_TEMPERATURE
        else:
            self.status &= ~Status.OVER_TEMPERATURE
        current = max(0.0, min(setpoint, limit))
        if current > 0:
            self.status |= Status.BALANCING
        else:
            self.status &= ~Status.BALANCING
        return current

    def apply_control(self, updates: dict[str, float]) -> None:
        if "balance_setpoint" in updates:
            updates["balance_setpoint"] = min(updates["balance_setpoint"], self.shunt_max)
            self.setpoint_written_at = self.now
            self.status &= ~Status.WATCHDOG_EXPIRED
        super().apply_control(updates)

    def supported_commands(self) -> frozenset[int]:
        return super().supported_commands() | {Command.MEASURE_RI}

    def on_command(self, command: int) -> None:
        if command == Command.MEASURE_RI:
            self.ri_done_at = self.now + RI_MEASURE_S
            self.status |= Status.RI_MEASURING

    def tick(self, now: float) -> None:
        super().tick(now)
        if self.ri_done_at >= 0 and now >= self.ri_done_at:
            self.ri_done_at = -1.0
            self.status &= ~Status.RI_MEASURING
            self.measured_resistance = self.resistance_mohm
            self.ri_sequence = (self.ri_sequence + 1) & 0xFFFF
        if self.measured_resistance == 0.0:
            self.measured_resistance = self.resistance_mohm

    def measurement_values(self) -> dict[str, float]:
        return {
            "voltage": max(0.0, self.voltage),
            "resistance": self.measured_resistance,
            "temperature": self.temperature,
            "balance_current": self.shunt_current(),
            "module_temperature": self.module_temperature,
            "ri_sequence": self.ri_sequence,
        }


@dataclass
class CurrentSensorDevice(SimDevice):
    current: float = 0.0
    temperature: float = 25.0

    def measurement_values(self) -> dict[str, float]:
        full_scale = CURRENT_SENSOR_RANGE_A[self.kind]
        return {
            "current": max(-full_scale, min(full_scale, self.current)),
            "temperature": self.temperature,
        }


@dataclass
class RelayDevice(SimDevice):
    inputs: list[bool] = field(default_factory=lambda: [False] * DIGITAL_INPUTS)

    @property
    def relays(self) -> list[bool]:
        bits = int(self.control.get("relay_setpoint", 0))
        return [bool(bits >> n & 1) for n in range(RELAY_CHANNELS)]

    def measurement_values(self) -> dict[str, float]:
        relays = sum(1 << n for n, on in enumerate(self.relays) if on)
        inputs = sum(1 << n for n, on in enumerate(self.inputs) if on)
        return {"relays": relays, "inputs": inputs}


@dataclass
class EnvironmentDevice(SimDevice):
    temperature: float = 25.0
    humidity: float = 45.0
    hydrogen_ppm: float = 0.0
    acid_level: float = 100.0

    def measurement_values(self) -> dict[str, float]:
        return {
            "temperature": self.temperature,
            "humidity": self.humidity,
            "hydrogen": self.hydrogen_ppm,
            "acid_level": self.acid_level,
        }


def make_device(kind: DeviceKind, serial: int, unit: int = FACTORY_UNIT_ID) -> SimDevice:
    family = kind.family
    if family is DeviceFamily.BATTERY_MODULE:
        return BatteryModuleDevice(kind, serial, unit)
    if family is DeviceFamily.CURRENT_SENSOR:
        return CurrentSensorDevice(kind, serial, unit)
    if family is DeviceFamily.RELAY:
        return RelayDevice(kind, serial, unit)
    return EnvironmentDevice(kind, serial, unit)
