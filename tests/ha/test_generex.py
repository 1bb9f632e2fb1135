"""A GENEREX WEB-MANAGER / CS141 in Home Assistant, against the simulator impersonating one
(Modbus TCP and SNMP on 127.0.0.1): the config flow, the same device tree with read-only
entities and values, the general flags, our alarm rules on its readings, no control entity or
action, diagnostics without host or community, unload."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bacs_core.generex.cs141_map import GeneralFlag
from bacs_core.generex.source import GenerexSource
from bacs_core.sim.generex import Cs141Impersonation, ImpersonationOptions
from bacs_core.sim.room import Fault, Room, RoomConfig
from custom_components.bacs.const import DOMAIN
from custom_components.bacs.diagnostics import async_get_config_entry_diagnostics

from .conftest import make_entry, setup

ROOT = Path(__file__).resolve().parents[2]
STRINGS, BLOCKS = 2, 4
COMMUNITY = "s3cret-community"
HOT = {"temperature": {"warning_high": 19, "alarm_high": 20, "on_delay": 0}}
# Control entities of our module bus, by the end of their unique id: none for a web manager.
CONTROLS = (
    "-trip",
    "-reset",
    "-rescan",
    "-equalization",
    "-float_voltage",
    "-balancing_current",
    "-deviation",
    "-state_of_charge",
    "-discharge_weakest_block",
    "-thermal_runaway",
    "-runaway_pre_alert",
    "-trip_state",
    "-breaker",
    "-balancing",
)


async def serve(*faults: str) -> Cs141Impersonation:
    room = Room(
        RoomConfig(
            strings=STRINGS,
            blocks=BLOCKS,
            seed=3,
            settle_days=0.2,
            faults=tuple(Fault.parse(f) for f in faults),
        )
    )
    cs141 = Cs141Impersonation(room, ImpersonationOptions(community=COMMUNITY))
    await cs141.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    return cs141


@pytest.fixture
async def cs141(socket_enabled: None) -> AsyncIterator[Cs141Impersonation]:
    served = await serve()
    yield served
    await served.stop()


def form(cs141: Cs141Impersonation, **changes: Any) -> dict[str, Any]:
    assert cs141.modbus is not None
    return {
        "host": "127.0.0.1",
        "tcp_port": cs141.modbus.port,
        "unit": 1,
        "snmp_port": cs141.snmp_port,
        "community": COMMUNITY,
    } | changes


def entry_for(cs141: Cs141Impersonation, **options: Any) -> MockConfigEntry:
    data = form(cs141)
    url = (
        f"generex://127.0.0.1:{data['tcp_port']}?unit=1&snmp={data['snmp_port']}"
        f"&community={COMMUNITY}&timeout=0.3"
    )
    return make_entry(
        data={"kind": "generex", **data, "url": url},
        options={"poll_interval": 60.0, **options},
        unique_id=f"generex:127.0.0.1:{data['tcp_port']}:1",
        entry_id="01JGENEREXTESTENTRY0000000",
        title="GENEREX room",
    )


def unique_ids(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    """unique id → entity id of the entry's entities."""
    registry = er.async_get(hass)
    return {
        e.unique_id: e.entity_id
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
    }


def state_of(hass: HomeAssistant, entry: MockConfigEntry, suffix: str) -> Any:
    ids = unique_ids(hass, entry)
    matches = [eid for uid, eid in ids.items() if uid.endswith(suffix)]
    assert len(matches) == 1, (suffix, sorted(ids))
    state = hass.states.get(matches[0])
    assert state is not None, matches[0]
    return state


async def test_config_flow_reads_the_web_manager_then_creates_the_entry(
    hass: HomeAssistant, cs141: Cs141Impersonation
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert "generex" in result["menu_options"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "generex"}
    )
    assert result["step_id"] == "generex"
    # Nothing answers on a wrong SNMP community and a closed Modbus port: a clear error.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], form(cs141, tcp_port=1, community="wrong")
    )
    assert result["errors"] == {"base": "generex_unreachable"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form(cs141))
    assert result["step_id"] == "generex_confirm"
    placeholders = result["description_placeholders"]
    assert (placeholders["strings"], placeholders["modules"], placeholders["lost"]) == (
        "2",
        "8",
        "0",
    )
    assert placeholders["protocols"] == "Modbus + SNMP"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "UPS room", "poll_interval": 30, "chemistry": "vrla"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.data["kind"] == "generex"
    assert entry.data["url"].startswith("generex://127.0.0.1:")
    assert entry.options == {"poll_interval": 30.0, "chemistry": "vrla"}
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert isinstance(entry.runtime_data.manager, GenerexSource)
    # The same web manager again: refused before it is read.
    again = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    again = await hass.config_entries.flow.async_configure(
        again["flow_id"], {"next_step_id": "generex"}
    )
    again = await hass.config_entries.flow.async_configure(again["flow_id"], form(cs141))
    assert again["type"] is FlowResultType.ABORT and again["reason"] == "already_configured"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_modbus_only_has_no_module_values(
    hass: HomeAssistant, cs141: Cs141Impersonation
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "generex"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], form(cs141, snmp_port=0)
    )
    assert result["errors"] == {"base": "generex_no_modules"}


async def test_the_same_device_tree_with_read_only_entities(
    hass: HomeAssistant, cs141: Cs141Impersonation
) -> None:
    entry = await setup(hass, entry_for(cs141))
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    names = sorted(d.name or "" for d in devices)
    assert names[:3] == ["GENEREX room", "String 1", "String 1 block 1"]
    assert len(devices) == 1 + STRINGS + STRINGS * BLOCKS
    block = next(d for d in devices if d.name == "String 2 block 3")
    assert block.manufacturer == "GENEREX" and block.serial_number is None
    ids = unique_ids(hass, entry)
    assert not [uid for uid in ids if uid.endswith(CONTROLS)], sorted(ids)
    controls = [eid for eid in ids.values() if eid.split(".")[0] in ("button", "switch", "number")]
    assert controls == ["button.generex_room_acknowledge_alarms"]  # our alarms: acknowledge
    # Values: what the simulated room's blocks and strings hold, within one scale step.
    devs = [dev for s in cs141.room.strings for dev in s.modules]
    voltages = [
        float(state_of(hass, entry, f"-{entry.runtime_data.manager.source_id}-{n}-voltage").state)
        for n in range(1, STRINGS * BLOCKS + 1)
    ]
    assert voltages == pytest.approx([d.voltage for d in devs], abs=0.011)
    ri = state_of(hass, entry, f"-{entry.runtime_data.manager.source_id}-6-internal_resistance")
    assert float(ri.state) == pytest.approx(devs[5].resistance_mohm, abs=0.011)
    temp = state_of(hass, entry, f"-{entry.runtime_data.manager.source_id}-8-temperature")
    assert float(temp.state) == pytest.approx(devs[7].temperature, abs=0.051)
    string_v = state_of(hass, entry, "-string1-voltage")
    total = sum(d.voltage for d in cs141.room.strings[0].modules)
    assert float(string_v.state) == pytest.approx(total, abs=0.051)
    current = state_of(hass, entry, "-string2-current")
    assert float(current.state) == pytest.approx(cs141.room.strings[1].sensor.current, abs=0.051)
    # The general flags (register 1000) and the status.
    assert state_of(hass, entry, "-generex_running").state == "on"
    assert state_of(hass, entry, "-generex_float_charging").state == "on"
    assert state_of(hass, entry, "-generex_module_lost").state == "off"
    assert state_of(hass, entry, "-generex_system_failure").state == "off"
    assert state_of(hass, entry, "-status").state == "ok"
    assert state_of(hass, entry, f"{entry.entry_id}-alarms").state == "No alarms"
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_our_alarm_rules_raise_on_its_readings(
    hass: HomeAssistant, cs141: Cs141Impersonation
) -> None:
    events: list[Any] = []
    hass.bus.async_listen("bacs_event", events.append)
    entry = await setup(hass, entry_for(cs141, thresholds=HOT))
    await hass.async_block_till_done()
    assert state_of(hass, entry, "-status").state == "alarm"
    text = state_of(hass, entry, f"{entry.entry_id}-alarms")
    assert "temperature" in text.state and "alarm limit" in text.state, text.state
    assert text.attributes["alarm_count"] == STRINGS * BLOCKS
    source_id = entry.runtime_data.manager.source_id
    problem = state_of(hass, entry, f"-{source_id}-3-problem")
    assert problem.state == "on" and "String 1 block 3" in problem.attributes["reasons"][0]
    raised = [e for e in events if e.data["type"] == "alarm_raised"]
    assert len(raised) == STRINGS * BLOCKS
    block_devices = {e.data["device_id"] for e in raised}
    hub = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, entry.entry_id)})
    assert hub is not None and hub.id not in block_devices  # told under each block's device
    # Acknowledge works as on our bus (it is in the source's capabilities).
    response = await hass.services.async_call(
        DOMAIN,
        "acknowledge_alarms",
        {"config_entry_id": entry.entry_id},
        blocking=True,
        return_response=True,
    )
    assert response == {"acknowledged": STRINGS * BLOCKS}
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_module_the_web_manager_lost(hass: HomeAssistant, socket_enabled: None) -> None:
    cs141 = await serve("dead:2:2")
    try:
        entry = await setup(hass, entry_for(cs141))
        source_id = entry.runtime_data.manager.source_id
        assert state_of(hass, entry, "-generex_module_lost").state == "on"
        assert state_of(hass, entry, f"-{source_id}-6-voltage").state == "unavailable"
        assert state_of(hass, entry, f"-{source_id}-5-voltage").state != "unavailable"
        assert state_of(hass, entry, "-status").state == "degraded"
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await cs141.stop()


@pytest.mark.parametrize(
    ("service", "data"),
    [("trip_breaker", {"reason": "test"}), ("reset_breaker", {})],
)
async def test_control_actions_are_refused(
    hass: HomeAssistant, cs141: Cs141Impersonation, service: str, data: dict[str, Any]
) -> None:
    entry = await setup(hass, entry_for(cs141))
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, service, {"config_entry_id": entry.entry_id, **data}, blocking=True
        )
    assert err.value.translation_key == "not_supported"
    assert "read-only" in str(err.value.translation_placeholders)
    block = next(
        d
        for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        if d.name == "String 1 block 1"
    )
    for device_service in ("measure_resistance", "identify"):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN, device_service, {"device_id": block.id}, blocking=True
            )
        assert err.value.translation_key == "not_supported"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_leave_out_host_and_community(
    hass: HomeAssistant, cs141: Cs141Impersonation
) -> None:
    entry = await setup(hass, entry_for(cs141))
    diag = await async_get_config_entry_diagnostics(hass, entry)
    text = json.dumps(diag)
    assert COMMUNITY not in text and "127.0.0.1" not in text
    assert diag["entry"]["data"]["community"] == "**REDACTED**"
    assert diag["entry"]["bus"].startswith("generex://**REDACTED**:")
    assert diag["manager"]["source"] == "generex" and diag["manager"]["reachable"]
    assert diag["snapshot"]["capabilities"]
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_silent_web_manager_makes_the_entities_unavailable(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    cs141 = await serve()
    entry = await setup(hass, entry_for(cs141))
    source_id = entry.runtime_data.manager.source_id
    await cs141.stop()
    await entry.runtime_data.manager.poll_once()
    await hass.async_block_till_done()
    assert state_of(hass, entry, f"-{source_id}-1-voltage").state == "unavailable"
    assert state_of(hass, entry, "-status").state == "bus_lost"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_setup_retries_while_nothing_answers(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    cs141 = await serve()
    entry = entry_for(cs141)
    await cs141.stop()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_options_are_our_alarm_rules_only(
    hass: HomeAssistant, cs141: Cs141Impersonation
) -> None:
    """No strings to form, no equalization, no trip: the poll interval, the chemistry and our
    thresholds, applied to the running source without a reload."""
    entry = await setup(hass, entry_for(cs141))
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["step_id"] == "generex"
    fields = {str(k) for k in result["data_schema"].schema}
    assert fields == {"poll_interval", "chemistry", "latch_alarms", "thresholds", "ups"}
    source = entry.runtime_data.manager
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "poll_interval": 1000,
            "chemistry": "vrla",
            "latch_alarms": True,
            "thresholds": {"temperature_alarm_high": 20, "temperature_warning_high": 19},
        },
    )
    assert result["errors"] == {"poll_interval": "poll_interval_range"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "poll_interval": 60,
            "chemistry": "vrla",
            "latch_alarms": True,
            "thresholds": {"temperature_alarm_high": 20, "temperature_warning_high": 19},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options["thresholds"] == {"temperature": {"alarm_high": 20, "warning_high": 19}}
    await hass.async_block_till_done()
    assert entry.runtime_data.manager is source  # applied live
    assert source.config.thresholds.temperature.alarm_high == 20
    await hass.config_entries.async_unload(entry.entry_id)


async def test_the_general_flags_are_translated_with_icons(
    hass: HomeAssistant, cs141: Cs141Impersonation
) -> None:
    strings = json.loads((ROOT / "custom_components/bacs/translations/en.json").read_text())
    icons = json.loads((ROOT / "custom_components/bacs/icons.json").read_text())
    entry = await setup(hass, entry_for(cs141))
    registry = er.async_get(hass)
    keys = {
        e.translation_key
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if e.domain == "binary_sensor" and (e.translation_key or "").startswith("generex_")
    }
    declared = {k for k in strings["entity"]["binary_sensor"] if k.startswith("generex_")}
    assert keys == declared and len(keys) == len(GeneralFlag)
    assert keys <= set(icons["entity"]["binary_sensor"])
    await hass.config_entries.async_unload(entry.entry_id)


async def test_device_triggers_only_for_what_it_announces(
    hass: HomeAssistant, cs141: Cs141Impersonation
) -> None:
    from custom_components.bacs.device_trigger import async_get_triggers

    entry = await setup(hass, entry_for(cs141))
    hub = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, entry.entry_id)})
    assert hub is not None
    types = {t["type"] for t in await async_get_triggers(hass, hub.id)}
    assert {"alarm_raised", "bus_lost", "device_lost"} <= types
    assert not types & {"tripped", "trip_reset", "runaway_detected", "runaway_pre_alert"}
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_reads_the_new_address_first(
    hass: HomeAssistant, cs141: Cs141Impersonation
) -> None:
    entry = await setup(hass, entry_for(cs141))
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    fields = {str(k) for k in result["data_schema"].schema}
    assert fields == {"host", "tcp_port", "unit", "snmp_port", "community"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], form(cs141, tcp_port=1, community="wrong")
    )
    assert result["errors"] == {"base": "generex_unreachable"}
    assert entry.state is ConfigEntryState.LOADED  # a web manager is read, never owned
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], form(cs141, host=" 127.0.0.1 ")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data["host"] == "127.0.0.1"
    assert "timeout" not in entry.data["url"]  # rebuilt from the form
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)
