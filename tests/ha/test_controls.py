"""Controls that cannot surprise: the breaker trips and resets only through buttons and
actions, for administrators; relay outputs are opt-in switches no assistant takes; a
voice-style "turn on everything" reaches no relay."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.auth.const import GROUP_ID_USER
from homeassistant.components.homeassistant import exposed_entities
from homeassistant.components.homeassistant.const import DATA_EXPOSED_ENTITIES
from homeassistant.const import EntityCategory
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from bacs_core.manager import validate_config
from bacs_core.snapshot import TripState
from custom_components.bacs import manager_settings
from custom_components.bacs.const import DOMAIN

from .conftest import OPTIONS, cycle, make_entry, room, setup

RELAYS = ("switch.relay_module_11_relay_3", "switch.relay_module_11_relay_4")
TRIP = "button.bacs_test_trip_breaker"
RESET = "button.bacs_test_reset_breaker"
ACK = "button.bacs_test_acknowledge_alarms"
ASSISTANTS = ("conversation", "cloud.alexa", "cloud.google_assistant")


def _expose_new_entities(hass: HomeAssistant, assistant: str) -> None:
    """The assistant setting "expose new entities" switched on (the websocket command's)."""
    hass.data[DATA_EXPOSED_ENTITIES].async_set_expose_new_entities(assistant, True)


@pytest.fixture
async def hass_plain_user(hass: HomeAssistant, hass_admin_user: MockUser) -> MockUser:
    """A household member: controls every entity, but is no administrator."""
    group = await hass.auth.async_get_group(GROUP_ID_USER)
    return MockUser(groups=[group]).add_to_hass(hass)


async def _enable_relay_switches(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """What a user does on purpose: enable the disabled-by-default relay switches."""
    registry = er.async_get(hass)
    for entity_id in RELAYS:
        registry.async_update_entity(entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()


def _relay_outputs(entry: MockConfigEntry) -> list[bool]:
    relay = room(entry).strings[0].relay
    return [bool(relay.relays[i]) for i in range(4)]


async def _press(hass: HomeAssistant, entity_id: str, context: Context | None = None) -> None:
    await hass.services.async_call(
        "button", "press", {"entity_id": entity_id}, blocking=True, context=context
    )


async def test_no_switch_for_a_breaker(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Relays 1 and 2 open the two strings' breakers (automatic trip): they have no switch;
    relays 3 and 4 are opt-in switches in the configuration category."""
    registry = er.async_get(hass)
    switches = {
        e.entity_id: e
        for e in er.async_entries_for_config_entry(registry, loaded_entry.entry_id)
        if e.domain == "switch" and e.translation_key == "relay"
    }
    assert set(switches) == set(RELAYS)
    for entry in switches.values():
        assert entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert entry.entity_category is EntityCategory.CONFIG
        assert hass.states.get(entry.entity_id) is None  # disabled: no state at all
    for button in (TRIP, RESET):
        entry = registry.async_get(button)
        assert entry is not None
        assert entry.entity_category is EntityCategory.CONFIG
        assert entry.disabled_by is None


async def test_no_assistant_takes_a_control(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Home Assistant's own exposure rules, even with "expose new entities" switched on."""
    assert await async_setup_component(hass, "homeassistant", {})
    await _enable_relay_switches(hass, loaded_entry)
    for assistant in ASSISTANTS:
        _expose_new_entities(hass, assistant)
    controls = [
        e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), loaded_entry.entry_id)
        if e.domain in ("switch", "button")
    ]
    assert {*RELAYS, TRIP, RESET, "switch.bacs_test_equalization"} <= set(controls)
    for assistant in ASSISTANTS:
        for entity_id in controls:
            assert not exposed_entities.async_should_expose(hass, assistant, entity_id), (
                assistant,
                entity_id,
            )


async def test_turn_on_everything_assist_sees_moves_no_relay(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A voice-style "turn on all the switches": every entity Assist is given, turned on."""
    assert await async_setup_component(hass, "homeassistant", {})
    await _enable_relay_switches(hass, loaded_entry)
    _expose_new_entities(hass, "conversation")
    await cycle(hass, loaded_entry)
    before = _relay_outputs(loaded_entry)
    assert before == [False] * 4
    exposed = [
        state.entity_id
        for state in hass.states.async_all()
        if exposed_entities.async_should_expose(hass, "conversation", state.entity_id)
    ]
    switches = [e for e in exposed if e.startswith("switch.")]
    if switches:
        await hass.services.async_call("switch", "turn_on", {"entity_id": switches}, blocking=True)
    if exposed:
        await hass.services.async_call(
            "homeassistant", "turn_on", {"entity_id": exposed}, blocking=True
        )
    await cycle(hass, loaded_entry, 2)
    assert _relay_outputs(loaded_entry) == before
    assert loaded_entry.runtime_data.manager.safety.state is TripState.ARMED


@pytest.mark.parametrize("user", ["read_only", "plain"])
@pytest.mark.parametrize(
    ("service", "data"),
    [
        ("trip_breaker", {"reason": "test"}),
        ("trip_breaker", {"reason": "test", "string": 2}),
        ("reset_breaker", {}),
        ("reset_breaker", {"string": 1}),
        ("acknowledge_alarms", {}),
    ],
)
async def test_read_only_user_refused_by_actions(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_read_only_user: MockUser,
    hass_plain_user: MockUser,
    user: str,
    service: str,
    data: dict[str, Any],
) -> None:
    """Actions have no entity permissions: the integration checks the user itself."""
    caller = hass_read_only_user if user == "read_only" else hass_plain_user
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            service,
            {"config_entry_id": loaded_entry.entry_id, **data},
            blocking=True,
            context=Context(user_id=caller.id),
        )
    assert err.value.translation_key == "admin_required"
    assert "Only an administrator" in str(err.value)
    assert loaded_entry.runtime_data.manager.safety.state is TripState.ARMED


async def test_non_admins_refused_by_buttons_and_switches(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_plain_user: MockUser,
    hass_read_only_user: MockUser,
) -> None:
    """A read-only user may control no entity at all (Home Assistant refuses); a user who
    may control entities but is no administrator is refused by the integration."""
    await _enable_relay_switches(hass, loaded_entry)
    for user, refusal in (
        (hass_plain_user, ServiceValidationError),
        (hass_read_only_user, Unauthorized),
    ):
        context = Context(user_id=user.id)
        for button in (TRIP, RESET, ACK):
            with pytest.raises(refusal) as err:
                await _press(hass, button, context)
            if refusal is ServiceValidationError:
                assert err.value.translation_key == "admin_required"
        with pytest.raises(refusal) as err:
            await hass.services.async_call(
                "switch", "turn_on", {"entity_id": RELAYS[0]}, blocking=True, context=context
            )
        if refusal is ServiceValidationError:
            assert err.value.translation_key == "admin_required"
    await cycle(hass, loaded_entry)
    assert _relay_outputs(loaded_entry) == [False] * 4
    assert loaded_entry.runtime_data.manager.safety.state is TripState.ARMED


async def test_admin_trips_and_resets_with_the_buttons(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_admin_user: MockUser
) -> None:
    context = Context(user_id=hass_admin_user.id)
    await _press(hass, TRIP, context)
    for _ in range(3):  # the breaker opens in the simulated room, its input reports it
        room(loaded_entry).step(0.5)
        await cycle(hass, loaded_entry)
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "tripped"
    assert _relay_outputs(loaded_entry)[:2] == [True, True]
    reason = loaded_entry.runtime_data.manager.safety.reason
    assert reason == f"manual: Trip breaker button pressed by {hass_admin_user.name}"
    await _press(hass, RESET, context)
    room(loaded_entry).step(0.5)
    await cycle(hass, loaded_entry, 2)
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "armed"
    assert _relay_outputs(loaded_entry) == [False] * 4


async def test_reset_button_refusal_is_a_validation_error(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Nothing to reset while armed: a translated refusal, not a traceback."""
    with pytest.raises(ServiceValidationError) as err:
        await _press(hass, RESET)
    assert err.value.translation_key == "reset_refused"


async def test_trip_buttons_unavailable_without_a_trip_relay(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(options={"string_count": 2, "poll_interval": 60}))
    assert hass.states.get(TRIP).state == "unavailable"
    assert hass.states.get(RESET).state == "unavailable"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "trip_breaker", {"config_entry_id": entry.entry_id}, blocking=True
        )
    assert err.value.translation_key == "no_trip_relay"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_relay_switch_for_an_admin(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_admin_user: MockUser
) -> None:
    await _enable_relay_switches(hass, loaded_entry)
    context = Context(user_id=hass_admin_user.id)
    for service, state in (("turn_on", "on"), ("turn_off", "off")):
        await hass.services.async_call(
            "switch", service, {"entity_id": RELAYS[0]}, blocking=True, context=context
        )
        await cycle(hass, loaded_entry)
        assert hass.states.get(RELAYS[0]).state == state
    # An automation (no user) may switch it too, as with any admin action.
    await hass.services.async_call("switch", "turn_on", {"entity_id": RELAYS[1]}, blocking=True)
    await cycle(hass, loaded_entry)
    assert _relay_outputs(loaded_entry) == [False, False, False, True]


async def test_relay_that_became_a_breaker_refuses(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Relay 3 is made a breaker's trip relay in the options: its switch stops at once."""
    await _enable_relay_switches(hass, loaded_entry)
    options = {**OPTIONS, "trip": {"breakers": [{"relay": "bus1/11", "channel": 3, "input": 3}]}}
    manager = loaded_entry.runtime_data.manager
    hass.config_entries.async_update_entry(loaded_entry, options=options)
    await manager.apply_config(validate_config(manager_settings(loaded_entry)))
    await cycle(hass, loaded_entry)
    assert hass.states.get(RELAYS[0]).state == "unavailable"
    # Home Assistant skips an unavailable entity; called directly, the switch refuses.
    await hass.services.async_call("switch", "turn_on", {"entity_id": RELAYS[0]}, blocking=True)
    entity = hass.data["entity_components"]["switch"].get_entity(RELAYS[0])
    with pytest.raises(ServiceValidationError) as err:
        await entity.async_turn_on()
    assert err.value.translation_key == "breaker_relay_not_a_switch"
    await cycle(hass, loaded_entry)
    assert _relay_outputs(loaded_entry)[2] is False
    assert manager.safety.state is TripState.ARMED


async def test_relay_command_fails_when_bus_lost(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A command that cannot reach the bus is a device failure, translated."""
    await _enable_relay_switches(hass, loaded_entry)
    room(loaded_entry).buses[0].faults.vanished_until = 1e12
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call("switch", "turn_on", {"entity_id": RELAYS[1]}, blocking=True)
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "command_failed"


def test_library_errors_become_translated_errors() -> None:
    """The one mapping: refusals are the user's to fix, a bus failure is the device's."""
    from bacs_core.bus.errors import BusTimeoutError
    from bacs_core.manager import SafetyRefusedError
    from custom_components.bacs.errors import translated

    refused = translated(SafetyRefusedError("use_reset", "this relay holds the trip"))
    assert isinstance(refused, ServiceValidationError)
    assert refused.translation_key == "safety_refused"
    gone = translated(KeyError("no device bus1/7"))
    assert isinstance(gone, ServiceValidationError)
    assert gone.translation_placeholders == {"error": "no device bus1/7"}
    failed = translated(BusTimeoutError("unit 7: no answer"))
    assert not isinstance(failed, ServiceValidationError)
    assert failed.translation_key == "command_failed"
    with pytest.raises(TypeError):
        translated(RuntimeError("a bug, not a refusal"))


async def test_unknown_user_is_refused(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    from homeassistant.exceptions import UnknownUser

    with pytest.raises(UnknownUser):
        await hass.services.async_call(
            DOMAIN,
            "trip_breaker",
            {"config_entry_id": loaded_entry.entry_id},
            blocking=True,
            context=Context(user_id="no-such-user"),
        )
    assert loaded_entry.runtime_data.manager.safety.state is TripState.ARMED
