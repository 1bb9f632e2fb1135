"""The appliance's MQTT discovery, read by a real Home Assistant: its MQTT integration on a
real mosquitto (started here on a loopback port; PHCC's ``socket_enabled``), a manager on the
simulator publishing through bacs_core.mqtt, no bacs integration. The battery room appears
with its devices, names, units and values, and a button press comes back as a command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from homeassistant.components.binary_sensor import BinarySensorEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.mqtt import entities as mqtt_entities
from bacs_core.mqtt import mqtt_settings
from bacs_core.mqtt.publisher import MqttPublisher
from bacs_core.snapshot import TripState
from custom_components.bacs import binary_sensor
from custom_components.bacs import sensor_descriptions as sensor
from tests.mqtt_broker import Mosquitto, needs_mosquitto

URL = "sim://mq?strings=2&blocks=3&speed=0&settle_days=1&seed=2"


@pytest.fixture
def broker(socket_enabled: None, tmp_path: Path) -> Iterator[Mosquitto]:
    """PHCC blocks sockets; ``socket_enabled`` lifts that, and its allow-list (127.0.0.1)
    still keeps every connection on this machine."""
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
async def appliance(broker: Mosquitto, tmp_path: Path) -> AsyncIterator[MqttPublisher]:
    manager = Manager(
        validate_config({"buses": [{"id": "bus1", "url": URL}], "string_count": 2,
                         "trip": {"auto": True}}),
        storage=MemoryStorage(),
    )  # fmt: skip
    settings = mqtt_settings(
        {"host": "127.0.0.1", "port": broker.port,
         "commands": {"reset_trip": True, "acknowledge": True}, "diagnostics": True}
    )  # fmt: skip
    publisher = MqttPublisher(
        manager, settings, site_id="room", site_name="Battery room", state_dir=tmp_path,
        simulated=True,
    )  # fmt: skip
    await manager.start(run_loop=False)
    publisher.start()
    await manager.poll_once()
    yield publisher
    await manager.stop()
    await publisher.stop()


def shown(hass: HomeAssistant, entity_id: str) -> Any:
    """The entity's state once it has a value (discovery first, then availability, value)."""
    state = hass.states.get(entity_id)
    return state if state is not None and state.state not in ("unavailable", "unknown") else None


async def until(check: Any, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


@needs_mosquitto
async def test_home_assistant_builds_the_battery_room_from_discovery(
    hass: HomeAssistant, broker: Mosquitto, appliance: MqttPublisher
) -> None:
    entry = MockConfigEntry(
        domain="mqtt",
        title="MQTT",
        data={"broker": "127.0.0.1", "port": broker.port},
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    # The MQTT integration reads configuration.yaml for MQTT items; PHCC's testing config
    # has none. An empty one, as a fresh Home Assistant would have.
    with patch("homeassistant.config.async_hass_config_yaml", AsyncMock(return_value={})):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()

    voltage = await until(lambda: shown(hass, "sensor.string_1_block_1_voltage"))
    snap = appliance.manager.snapshot
    assert snap is not None
    module = snap.strings[0].modules[0]
    assert voltage.attributes["unit_of_measurement"] == "V"
    assert voltage.attributes["device_class"] == "voltage"
    assert float(voltage.state) == pytest.approx(module.voltage.value, abs=0.01)
    trip = await until(lambda: shown(hass, "sensor.battery_room_breaker_trip"))
    assert trip.state == "armed"
    assert trip.attributes["options"][-1] == "state_unknown"
    runaway = hass.states.get("binary_sensor.battery_room_thermal_runaway")
    assert runaway is not None and runaway.state == "off"
    alarms = await until(lambda: shown(hass, "sensor.battery_room_alarms"))
    assert alarms.state == "No alarms"
    assert alarms.attributes["alarms"] == []
    string_v = hass.states.get("sensor.string_1_voltage")
    assert string_v is not None and float(string_v.state) > 30

    devices = dr.async_get(hass)
    block = devices.async_get_device(
        identifiers={("mqtt", f"bacs-room-battery_module-{module.info.serial}")}
    )
    assert block is not None
    assert (block.name, block.serial_number) == ("String 1 block 1", str(module.info.serial))
    string_device = devices.async_get(block.via_device_id or "")
    assert string_device is not None and string_device.name == "String 1"
    hub = devices.async_get(string_device.via_device_id or "")
    assert hub is not None and (hub.name, hub.model) == ("Battery room", "BACS manager")
    # A disabled-by-default diagnostic entity arrives disabled, as in the integration.
    registry = er.async_get(hass)
    deviation = registry.async_get("sensor.string_1_block_1_deviation_from_target")
    assert deviation is not None and deviation.disabled_by is er.RegistryEntryDisabler.INTEGRATION

    # The reset button (enabled in the site file) comes back as a command: a manual trip,
    # then Home Assistant's button resets it.
    await appliance.manager.trip("test")
    await appliance.manager.poll_once()
    await until(lambda: hass.states.get("sensor.battery_room_breaker_trip").state == "tripped")
    await hass.services.async_call(
        "button", "press", {"entity_id": "button.battery_room_reset_breaker"}, blocking=True
    )
    await until(lambda: appliance.manager.safety.state is TripState.ARMED)
    await appliance.manager.poll_once()
    await until(lambda: hass.states.get("sensor.battery_room_breaker_trip").state == "armed")

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def test_mqtt_entities_match_the_integration() -> None:
    """Keys, units, device classes, state classes and precisions as the integration's."""
    pairs = [
        (mqtt_entities.MODULE_ENTITIES, sensor.MODULE_SENSORS + binary_sensor.MODULE_BINARY),
        (mqtt_entities.STRING_ENTITIES, sensor.STRING_SENSORS + binary_sensor.STRING_BINARY),
        (mqtt_entities.HUB_ENTITIES, sensor.HUB_SENSORS + binary_sensor.HUB_BINARY),
        (mqtt_entities.CURRENT_SENSOR_ENTITIES, sensor.CURRENT_SENSORS),
        (mqtt_entities.ENVIRONMENT_ENTITIES, sensor.ENVIRONMENT_SENSORS),
    ]
    skipped = {"block_voltages"}  # a dashboard helper of the integration (a list attribute)
    for ours, theirs in pairs:
        by_key = {d.key: d for d in theirs if d.key not in skipped}
        assert {s.key for s in ours} == set(by_key)
        for spec in ours:
            d = by_key[spec.key]
            is_binary = isinstance(d, BinarySensorEntityDescription)
            assert spec.platform == ("binary_sensor" if is_binary else "sensor")
            dc = d.device_class
            assert spec.device_class == (dc.value if dc else None), spec.key
            if not is_binary:
                assert spec.unit == d.native_unit_of_measurement, spec.key
                sc = d.state_class
                assert spec.state_class == (sc.value if sc else None), spec.key
                assert spec.precision == d.suggested_display_precision, spec.key
                assert spec.options == (tuple(d.options) if d.options else None), spec.key
            assert spec.enabled == d.entity_registry_enabled_default, spec.key
            assert spec.diagnostic == (d.entity_category is not None), spec.key
