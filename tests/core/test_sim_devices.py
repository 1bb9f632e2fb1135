"""Device-side rules of the simulated modules: the behaviour real firmware must have."""

from __future__ import annotations

import pytest

from bacs_core import registers as reg
from bacs_core.model import FACTORY_UNIT_ID, DeviceKind, Status
from bacs_core.sim.devices import BatteryModuleDevice, ModbusDeviceError, make_device
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig


def module() -> BatteryModuleDevice:
    dev = make_device(DeviceKind.C20, 1234, 5)
    assert isinstance(dev, BatteryModuleDevice)
    dev.voltage, dev.resistance_mohm, dev.temperature = 13.62, 4.9, 24.5
    dev.tick(0.0)
    return dev


def write(dev: BatteryModuleDevice, name: str, value: float) -> None:
    r = reg.MODULE_CONTROL.register(name)
    dev.write(r.address, r.encode(value))


def test_measurement_block_round_trips_through_the_table() -> None:
    dev = module()
    values = reg.MODULE_MEASUREMENT.decode(dev.read(reg.MEASUREMENT_START, 8))
    assert values["voltage"] == pytest.approx(13.62)
    assert values["resistance"] == pytest.approx(4.9)
    assert values["temperature"] == pytest.approx(24.5)
    assert Status(int(values["status"])) & Status.MEASUREMENT_VALID


def test_reads_outside_or_across_blocks_are_illegal_addresses() -> None:
    dev = module()
    for address, count in ((0x0050, 1), (reg.MEASUREMENT_START + 6, 4), (0x0400, 1)):
        with pytest.raises(ModbusDeviceError) as err:
            dev.read(address, count)
        assert err.value.code == 2


def test_shunt_is_clamped_to_the_kind_maximum() -> None:
    dev = module()
    write(dev, "balance_setpoint", 0.5)  # C20 can shunt 0.15 A
    assert dev.shunt_current() == pytest.approx(0.15)
    assert Status.BALANCING in dev.status


def test_watchdog_stops_balancing_when_not_refreshed() -> None:
    dev = module()
    write(dev, "watchdog", 30)
    write(dev, "balance_setpoint", 0.1)
    dev.now = 29.0
    assert dev.shunt_current() == pytest.approx(0.1)
    write(dev, "balance_setpoint", 0.1)  # refreshed at t=29
    dev.now = 58.0
    assert dev.shunt_current() == pytest.approx(0.1)
    dev.now = 60.0
    assert dev.shunt_current() == 0.0
    assert Status.WATCHDOG_EXPIRED in dev.status


def test_hot_module_derates_its_shunt() -> None:
    dev = module()
    write(dev, "balance_setpoint", 0.15)
    dev.module_temperature = 72.5  # halfway from 60 to 85 °C
    assert dev.shunt_current() == pytest.approx(0.075)
    assert Status.OVER_TEMPERATURE in dev.status


def test_refused_values_are_illegal_values() -> None:
    dev = module()
    with pytest.raises(ModbusDeviceError) as err:
        dev.write(reg.CONTROL_START + 1, [0])  # watchdog 0 s is below its minimum
    assert err.value.code == 3
    with pytest.raises(ModbusDeviceError):
        dev.write(reg.CONTROL_START + 2, [99])  # unknown command


def test_resistance_measurement_command() -> None:
    dev = module()
    dev.resistance_mohm = 6.0
    write(dev, "command", 2)
    assert Status.RI_MEASURING in dev.status
    dev.tick(5.0)
    values = reg.MODULE_MEASUREMENT.decode(dev.read(reg.MEASUREMENT_START, 8))
    assert values["resistance"] == pytest.approx(6.0)
    assert values["ri_sequence"] == 1


def test_addressing_needs_the_button() -> None:
    room = Room(RoomConfig(strings=1, blocks=2, settle_days=0))
    bus = room.buses[0]
    dev = room.add_factory_device(0, DeviceKind.C20)
    address = reg.ADDRESSING.register("address")
    with pytest.raises(ModbusDeviceError):
        bus.write(FACTORY_UNIT_ID, reg.ADDRESSING.start, address.encode(50))
    room.press_button(0, FACTORY_UNIT_ID)
    bus.write(FACTORY_UNIT_ID, reg.ADDRESSING.start, address.encode(50))
    assert bus.devices[50] is dev and FACTORY_UNIT_ID not in bus.devices


def test_relay_trips_the_breaker_and_the_input_reports_it() -> None:
    room = Room(RoomConfig(strings=2, blocks=4, settle_days=0))
    s = room.string(2)
    s.relay.apply_control({"relay_setpoint": 0b10})
    room.step(1.0)
    assert not s.physics.breaker_closed
    assert s.relay.inputs[1] is False and s.relay.inputs[0] is True
    with pytest.raises(ValueError, match="energised"):
        room.close_breaker(2)
    s.relay.apply_control({"relay_setpoint": 0})
    room.close_breaker(2)
    room.step(1.0)
    assert s.physics.breaker_closed and s.relay.inputs[1]


def test_stuck_breaker_does_not_open() -> None:
    room = Room(RoomConfig(strings=1, blocks=4, settle_days=0))
    room.inject(Fault(FaultKind.BREAKER_STUCK, 1))
    room.string(1).relay.apply_control({"relay_setpoint": 1})
    room.step(1.0)
    assert room.string(1).physics.breaker_closed


def test_fault_spec_parsing() -> None:
    f = Fault.parse("runaway:1:12=3@600")
    assert (f.kind, f.string, f.block, f.value, f.at_s) == (FaultKind.RUNAWAY, 1, 12, 3.0, 600.0)
    assert Fault.parse("timeouts:2").value == pytest.approx(0.05)
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.parse("meltdown:1")


def test_units_are_assigned_in_string_order() -> None:
    room = Room(RoomConfig(strings=2, blocks=32, settle_days=0))
    kinds = {u: d.kind for u, d in room.buses[0].devices.items()}
    assert all(kinds[u] is DeviceKind.C20 for u in range(1, 65))
    assert kinds[65] is DeviceKind.CS200 and kinds[66] is DeviceKind.CS200
    assert kinds[67] is DeviceKind.GX_R_AUX and kinds[68] is DeviceKind.ENVIRONMENT


def test_large_rooms_split_over_buses_by_whole_strings() -> None:
    room = Room(RoomConfig(strings=10, blocks=33, settle_days=0))
    assert len(room.buses) == 2
    assert all(len(b.devices) <= 240 for b in room.buses)
    assert (
        sum(isinstance(d, BatteryModuleDevice) for b in room.buses for d in b.devices.values())
        == 330
    )
