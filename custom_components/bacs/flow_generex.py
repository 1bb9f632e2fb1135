"""The config flow's GENEREX web manager path: the probe (one read, Modbus and SNMP, as
``bacs probe`` does) and the confirm form that shows what it found."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from bacs_core.generex.adapter import GenerexAdapter, GenerexUnreachableError
from bacs_core.generex.url import parse_generex_url
from bacs_core.manager.config import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN
from bacs_core.model import Chemistry

from .const import DEFAULT_POLL_INTERVAL, OPT_CHEMISTRY, OPT_POLL_INTERVAL
from .flow_connection import connection_url
from .flow_fields import chemistry_dropdown, name_field, number

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GenerexSummary:
    """What the probe of a GENEREX web manager found (the adapter's one read)."""

    strings: int
    modules: int
    modules_lost: int
    modbus: bool
    snmp: bool
    notes: tuple[str, ...]

    def placeholders(self) -> dict[str, str]:
        """The confirm form's description."""
        protocols = " + ".join(p for p, ok in (("Modbus", self.modbus), ("SNMP", self.snmp)) if ok)
        return {
            "strings": str(self.strings),
            "modules": str(self.modules),
            "lost": str(self.modules_lost),
            "protocols": protocols,
            "notes": "; ".join(self.notes[:3]) or "none",
        }


async def async_probe_generex(
    data: dict[str, Any], errors: dict[str, str]
) -> GenerexSummary | None:
    """Read the web manager once, as ``bacs probe`` does; fills ``errors`` on failure."""
    url = parse_generex_url(connection_url(data))
    adapter = GenerexAdapter(url)
    try:
        readings = await adapter.read()
    except GenerexUnreachableError as err:
        _LOGGER.debug("GENEREX probe: %s", err)
        errors["base"] = "generex_unreachable"
        return None
    finally:
        await adapter.close()
    if not readings.modules:  # the module table is SNMP's: none without it
        errors["base"] = "generex_no_modules" if readings.modbus_ok else "generex_not_bacs"
        return None
    return GenerexSummary(
        strings=len(readings.strings),
        modules=len(readings.modules),
        modules_lost=sum(1 for r in readings.modules if r.lost),
        modbus=readings.modbus_ok,
        snmp=readings.snmp_ok,
        notes=readings.notes,
    )


def generex_confirm_schema(data: dict[str, Any], taken: set[str]) -> vol.Schema:
    """A name, how often the web manager is read, and the chemistry our alarm rules use."""
    return vol.Schema(
        {
            **name_field(data, taken),
            vol.Required(OPT_POLL_INTERVAL, default=DEFAULT_POLL_INTERVAL): number(
                POLL_INTERVAL_MIN, POLL_INTERVAL_MAX, 1, "s"
            ),
            vol.Required(OPT_CHEMISTRY, default=Chemistry.VRLA.value): chemistry_dropdown(),
        }
    )


def generex_options(user_input: dict[str, Any]) -> dict[str, Any]:
    """The new entry's options from the confirm form."""
    return {
        OPT_POLL_INTERVAL: float(user_input[OPT_POLL_INTERVAL]),
        OPT_CHEMISTRY: user_input[OPT_CHEMISTRY],
    }
