"""Relay n trips string n, in Home Assistant: a breaker and a trip sensor per string, the
trip and reset actions naming a string (or every string), the buttons for every string."""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from custom_components.bacs.const import DOMAIN

from .conftest import HOT_OPTIONS, cycle, heat_until_tripped, make_entry, room, setup


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any], **kw: Any) -> Any:
    return await hass.services.async_call(DOMAIN, service, data, blocking=True, **kw)


def _energised(entry: MockConfigEntry) -> list[bool]:
    relay = room(entry).strings[0].relay  # one relay module: relay n opens string n
    return [bool(relay.relays[i]) for i in range(2)]


async def _settle(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    for _ in range(3):  # the breaker moves in the simulated room, its input reports it
        room(entry).step(0.5)
        await cycle(hass, entry)


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def test_trip_and_reset_one_string(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    entry_id = loaded_entry.entry_id
    await cycle(hass, loaded_entry)
    for string in (1, 2):
        assert _state(hass, f"sensor.string_{string}_breaker") == "closed"
        assert _state(hass, f"sensor.string_{string}_breaker_trip") == "armed"
    await _call(hass, "trip_breaker", {"config_entry_id": entry_id, "reason": "smoke", "string": 2})
    assert _energised(loaded_entry) == [False, True]  # relay 2 only, at once
    await _settle(hass, loaded_entry)
    assert _state(hass, "sensor.string_2_breaker") == "open"
    assert _state(hass, "sensor.string_2_breaker_trip") == "tripped"
    trip = hass.states.get("sensor.string_2_breaker_trip")
    assert trip is not None and trip.attributes["reason"] == "manual: smoke"
    assert trip.attributes["tripped_at"]
    assert _state(hass, "sensor.string_1_breaker") == "closed"
    assert _state(hass, "sensor.string_1_breaker_trip") == "armed"
    assert _state(hass, "sensor.bacs_test_breaker_trip") == "tripped"  # the most severe
    assert _state(hass, "sensor.bacs_test_breaker") == "closed"  # string 1 still connected
    # Nothing to reset on string 1; string 2 resets.
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "reset_breaker", {"config_entry_id": entry_id, "string": 1})
    assert err.value.translation_key == "reset_refused"
    assert "string 1's breaker trip is not active" in str(err.value)
    await _call(hass, "reset_breaker", {"config_entry_id": entry_id, "string": 2.0})  # a selector
    assert _energised(loaded_entry) == [False, False]
    room(loaded_entry).close_breaker(2)
    await _settle(hass, loaded_entry)
    assert _state(hass, "sensor.string_2_breaker_trip") == "armed"
    assert _state(hass, "sensor.string_2_breaker") == "closed"


async def test_without_a_string_every_string_trips_and_resets(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    entry_id = loaded_entry.entry_id
    await _call(hass, "trip_breaker", {"config_entry_id": entry_id})
    assert _energised(loaded_entry) == [True, True]
    await _settle(hass, loaded_entry)
    assert _state(hass, "sensor.string_1_breaker_trip") == "tripped"
    assert _state(hass, "sensor.string_2_breaker_trip") == "tripped"
    assert _state(hass, "sensor.bacs_test_breaker") == "open"
    await _call(hass, "reset_breaker", {"config_entry_id": entry_id})
    assert _energised(loaded_entry) == [False, False]


@pytest.mark.parametrize("service", ["trip_breaker", "reset_breaker"])
async def test_a_string_that_is_not_there_is_refused(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, service: str
) -> None:
    data = {"config_entry_id": loaded_entry.entry_id, "string": 5}
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, service, data)
    assert err.value.translation_key == "unknown_string"
    assert err.value.translation_placeholders == {"string": "5", "strings": "1, 2"}
    for bad in (2.5, 0, True, "two"):
        with pytest.raises((vol.Invalid, ServiceValidationError)):
            await _call(hass, service, data | {"string": bad})
    assert _energised(loaded_entry) == [False, False]


async def test_the_reset_of_the_hot_string_is_refused_the_other_permitted(
    hass: HomeAssistant,
) -> None:
    entry = await setup(hass, make_entry(options=HOT_OPTIONS))
    await heat_until_tripped(hass, entry)  # string 1 block 2 runs away
    await _call(hass, "trip_breaker", {"config_entry_id": entry.entry_id, "string": 2})
    await cycle(hass, entry)
    assert _state(hass, "sensor.string_1_breaker_trip") == "tripped"
    assert _energised(entry) == [True, True]
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "reset_breaker", {"config_entry_id": entry.entry_id, "string": 1})
    assert err.value.translation_key == "reset_refused"
    assert "still holds on string 1" in str(err.value)
    with pytest.raises(ServiceValidationError):
        await _call(hass, "reset_breaker", {"config_entry_id": entry.entry_id})  # all: no
    await _call(hass, "reset_breaker", {"config_entry_id": entry.entry_id, "string": 2})
    assert _energised(entry) == [True, False]
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(("scope", "tripped"), [("string", [True, False]), ("all", [True, True])])
async def test_a_runaway_trips_by_the_scope_option(
    hass: HomeAssistant, scope: str, tripped: list[bool]
) -> None:
    options = {**HOT_OPTIONS, "trip": {"auto": True, "scope": scope}}
    entry = await setup(hass, make_entry(options=options))
    await heat_until_tripped(hass, entry)  # string 1 block 2 runs away
    assert _energised(entry) == tripped
    await _settle(hass, entry)
    expected = ["tripped" if t else "armed" for t in tripped]
    assert [_state(hass, f"sensor.string_{n}_breaker_trip") for n in (1, 2)] == expected
    assert [_state(hass, f"sensor.string_{n}_breaker") for n in (1, 2)] == [
        "open" if t else "closed" for t in tripped
    ]
    await hass.config_entries.async_unload(entry.entry_id)


async def test_the_buttons_act_on_every_string(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_admin_user: MockUser
) -> None:
    context = Context(user_id=hass_admin_user.id)
    await hass.services.async_call(
        "button",
        "press",
        {"entity_id": "button.bacs_test_trip_breaker"},
        blocking=True,
        context=context,
    )
    assert _energised(loaded_entry) == [True, True]
    await _settle(hass, loaded_entry)
    await hass.services.async_call(
        "button",
        "press",
        {"entity_id": "button.bacs_test_reset_breaker"},
        blocking=True,
        context=context,
    )
    assert _energised(loaded_entry) == [False, False]
