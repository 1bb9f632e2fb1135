"""BACS battery monitoring: the thin Home Assistant side of bacs_core's Manager.

One config entry is one battery bus. entry.data holds the connection, entry.options the
manager's configuration (validated by bacs_core's own schema).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.typing import ConfigType

from bacs_core.bus import RegisterTransport
from bacs_core.bus.errors import BusConnectionError, PortBusyError
from bacs_core.events import Event as BacsEvent
from bacs_core.manager import ConfigError, Manager, validate_config
from bacs_core.manager.config import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN
from bacs_core.sim.clock import SimClock, SimClockError, wall_clock_of
from bacs_core.source import (
    Source,
    SourceUnavailableError,
    is_generex_url,
    is_remote_url,
    open_source,
)

from . import bus as bus_helpers
from .card import async_register_card
from .config_flow_remote import open_remote
from .const import (
    BUS_ID,
    CONF_URL,
    DOMAIN,
    ISSUE_APPLIANCE_UNREACHABLE,
    ISSUE_DEVICES_SILENT,
    OPT_POLL_INTERVAL,
)
from .coordinator import (
    BacsConfigEntry,
    BacsCoordinator,
    BacsRuntimeData,
    StoreStorage,
    async_create_port_issue,
    device_identifier,
    hub_identifier,
    string_identifier,
)
from .history import async_start_history
from .history_services import async_setup_history_services
from .repairs import SafetyNotices, async_delete_safety_issues
from .services import async_setup_services
from .ups import manager_options

_LOGGER = logging.getLogger(__name__)

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.IMAGE,
    Platform.NUMBER,
    Platform.SENSOR,
    Platform.SWITCH,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Actions are registered here so automations validate while an entry is not loaded."""
    async_setup_services(hass)
    async_setup_history_services(hass)
    await async_register_card(hass)  # the battery-room card: served, loaded by dashboards
    return True


def source_id(entry: BacsConfigEntry) -> str:
    """The bus id of the entry's source: ``bus1`` for a bus of our modules; a GENEREX web
    manager's modules have no serial numbers, so their refs carry the entry (unique ids)."""
    if is_generex_url(entry.data[CONF_URL]):
        return f"cs141-{entry.entry_id}"[:32]
    return BUS_ID


def manager_settings(entry: BacsConfigEntry) -> dict[str, Any]:
    """The plain dict bacs_core validates: the entry's bus plus the options (less the UPS
    link, which is the history's)."""
    return {
        **manager_options(entry.options),
        "buses": [{"id": source_id(entry), "url": entry.data[CONF_URL]}],
    }


async def async_setup_entry(hass: HomeAssistant, entry: BacsConfigEntry) -> bool:
    url = entry.data[CONF_URL]
    try:
        config = validate_config(manager_settings(entry))
    except ConfigError as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="invalid_config",
            translation_placeholders={"error": str(err)},
        ) from err
    clock = await _async_start_clock(entry)
    # With the simulator's clock the times too follow the simulated plant (a discharge's
    # duration, Ah and Wh in the history and the report), as in `bacs run --clock`.
    wall = wall_clock_of(clock) if clock is not None else None
    if is_generex_url(url):
        source = open_source(
            url, config, storage=StoreStorage(hass, entry.entry_id), clock=clock, wall_clock=wall
        )
        return await _async_start(hass, entry, source, None, url, wall)
    if is_remote_url(url):  # a BACS appliance elsewhere: its trip runs there, not here
        return await _async_start(hass, entry, open_remote(dict(entry.data)), None, url)
    transport = await bus_helpers.async_make_transport(url)
    try:
        await transport.connect()
    except PortBusyError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="port_busy",
            translation_placeholders={"port": err.port, "owner": err.owner or "?"},
        ) from err
    except BusConnectionError as err:
        path = bus_helpers.serial_path(url)
        if path and not await hass.async_add_executor_job(bus_helpers.port_exists, path):
            async_create_port_issue(hass, entry, path)
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        ) from err

    storage = StoreStorage(hass, entry.entry_id)
    manager = open_source(
        url, config, storage=storage, transports={BUS_ID: transport}, clock=clock, wall_clock=wall
    )
    return await _async_start(hass, entry, manager, transport, url, wall)


async def _async_start_clock(entry: BacsConfigEntry) -> SimClock | None:
    """The manager's clock: monotonic (None), or the simulator's when the entry's bus is a
    ``bacs simulate --speed N`` with a control channel (advanced mode; ./scripts/demo): its
    equalization lags, feed-forward and timers then run N× faster, with the plant."""
    try:
        clock = bus_helpers.sim_clock(entry.data)
    except ValueError as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="invalid_config",
            translation_placeholders={"error": str(err)},
        ) from err
    if clock is None:
        return None
    try:
        await clock.start()
    except SimClockError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        ) from err
    entry.async_on_unload(clock.stop)  # after the manager has stopped
    return clock


async def _async_start(
    hass: HomeAssistant,
    entry: BacsConfigEntry,
    manager: Source,
    transport: RegisterTransport | None,
    url: str,
    wall: Callable[[], datetime] | None = None,
) -> bool:
    """Start the source and hand it to the coordinator and the platforms (either kind)."""
    history = await async_start_history(hass, entry, manager, wall)  # before the first snapshot
    # Events of the first cycles (an alarm standing at start, a restored trip) are kept until
    # the devices exist, then told: nothing the manager says is lost to the set-up order.
    early: list[BacsEvent] = []
    stop_buffering = manager.add_event_listener(early.append)
    try:
        await manager.start()
    except SourceUnavailableError as err:  # a GENEREX web manager that does not answer
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        ) from err
    if not manager.devices:
        await manager.stop()
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="no_devices")
    ir.async_delete_issue(hass, DOMAIN, f"port_missing_{entry.entry_id}")
    if isinstance(manager, Manager):
        _adopt_hardware_id(hass, entry, manager)
    coordinator = BacsCoordinator(hass, entry, manager, url)
    entry.runtime_data = BacsRuntimeData(manager, coordinator, transport, url, history=history)
    try:
        await coordinator.async_config_entry_first_refresh()
    except BaseException:
        await manager.stop()
        raise
    data = entry.runtime_data
    data.unsubscribe.append(manager.add_snapshot_listener(coordinator.handle_snapshot))
    notices = SafetyNotices(hass, entry)  # a trip: repair issue, notification, log line
    notices.update(coordinator.data)
    entry.async_on_unload(coordinator.async_add_listener(lambda: notices.update(coordinator.data)))

    async def _stop_on_shutdown(_event: Event) -> None:
        await manager.stop()

    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _stop_on_shutdown))
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # No await from here on: the buffer hands over to the live listener without a gap.
    stop_buffering()
    data.unsubscribe.append(manager.add_event_listener(coordinator.handle_event))
    for event in early:
        coordinator.handle_event(event)
    return True


def _adopt_hardware_id(hass: HomeAssistant, entry: BacsConfigEntry, manager: Manager) -> None:
    """An entry made before version 2 is known by its connection string: once its bus has
    been read, it is known by its hardware (unless another entry already claims that)."""
    if entry.unique_id is not None and not entry.unique_id.startswith(LEGACY_UNIQUE_ID):
        return
    unique_id = bus_helpers.hardware_id(list(manager.devices.values()))
    if unique_id is None or hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, unique_id):
        return
    _LOGGER.debug("%s: unique id %s -> %s", entry.title, entry.unique_id, unique_id)
    hass.config_entries.async_update_entry(entry, unique_id=unique_id)


LEGACY_UNIQUE_ID = ("serial:", "tcp:", "sim:")


async def async_migrate_entry(hass: HomeAssistant, entry: BacsConfigEntry) -> bool:
    """Version 1 → 2: the poll interval into its bounds (it once allowed 0.5 s to an hour);
    the unique id moves from the connection string to the hardware at the next setup, when
    the bus has been read (see _adopt_hardware_id)."""
    if entry.version > 2:
        return False  # made by a newer version of this integration: do not guess
    if entry.version == 1:
        options = dict(entry.options)
        if OPT_POLL_INTERVAL in options:
            interval = float(options[OPT_POLL_INTERVAL])
            options[OPT_POLL_INTERVAL] = min(max(interval, POLL_INTERVAL_MIN), POLL_INTERVAL_MAX)
        hass.config_entries.async_update_entry(entry, options=options, version=2, minor_version=1)
        _LOGGER.info("%s: configuration migrated to version 2", entry.title)
    return True


async def _async_options_updated(hass: HomeAssistant, entry: BacsConfigEntry) -> None:
    """Thresholds, equalization and the trip apply live; a new poll interval (the manager's
    loop reads it once) or a new string layout (devices change their names) reloads."""
    manager = entry.runtime_data.manager
    config = validate_config(manager_settings(entry))
    old = manager.config
    if (config.poll_interval, config.string_count, config.block_counts) != (
        old.poll_interval,
        old.string_count,
        old.block_counts,
    ):
        hass.config_entries.async_schedule_reload(entry.entry_id)
        return
    await manager.apply_config(config)


async def async_unload_entry(hass: HomeAssistant, entry: BacsConfigEntry) -> bool:
    """Stop the manager (shunts off, state saved) and free the port."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        data = entry.runtime_data
        for unsub in data.unsubscribe:
            unsub()
        await data.manager.stop()
        ir.async_delete_issue(hass, DOMAIN, f"{ISSUE_DEVICES_SILENT}_{entry.entry_id}")
        ir.async_delete_issue(hass, DOMAIN, f"{ISSUE_APPLIANCE_UNREACHABLE}_{entry.entry_id}")
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: BacsConfigEntry) -> None:
    """Forget the persisted manager state with the entry."""
    await StoreStorage(hass, entry.entry_id).store.async_remove()
    ir.async_delete_issue(hass, DOMAIN, f"port_missing_{entry.entry_id}")
    async_delete_safety_issues(hass, entry.entry_id)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: BacsConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Allow deleting a device only when the bus no longer has it (stale devices)."""
    index = entry.runtime_data.coordinator.index
    present = {hub_identifier(entry)}
    present.update(string_identifier(entry, i) for i in index.strings)
    present.update(device_identifier(info) for info in index.infos.values())
    return not (device.identifiers & present)
