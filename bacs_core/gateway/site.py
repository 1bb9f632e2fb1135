"""The ``gateway:`` section of the appliance's site file (docs/appliance.md): the same choices
as ``bacs run --serve-modbus … --serve-snmp …``, validated with a path to the bad field so the
site file's error names its line.

    gateway:
      modbus: 0.0.0.0:502        # HOST:PORT; omit to serve SNMP only
      snmp: 0.0.0.0:161          # omit to serve Modbus only
      community: public
      unit: 1
      string_scale: 10           # raw units per V/A in the CS141 string registers
      commands: false            # acknowledge and trip reset over Modbus …
      allow: [192.0.2.5]         # … only from these addresses
"""

from __future__ import annotations

import ipaddress
from typing import Any

import voluptuous as vol

from ..generex.cs141_map import Cs141Settings
from .options import GatewayOptionError, GatewayOptions, parse_listen


def _ip(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise vol.Invalid(f"{value!r} is not an IP address") from None


def _listen(value: Any) -> tuple[str, int]:
    try:
        return parse_listen(str(value))
    except GatewayOptionError as err:
        raise vol.Invalid(str(err)) from None


GATEWAY_SCHEMA = vol.Schema(
    {
        vol.Optional("modbus"): _listen,
        vol.Optional("snmp"): _listen,
        vol.Optional("community", default="public"): vol.All(str, vol.Length(min=1, max=64)),
        vol.Optional("unit", default=1): vol.All(int, vol.Range(0, 255)),
        vol.Optional("string_scale", default=10): vol.In(
            [1, 10, 100, 1000], msg="expected 1, 10, 100 or 1000"
        ),
        vol.Optional("commands", default=False): bool,
        vol.Optional("allow", default=[]): [_ip],
    }
)


def gateway_section(data: Any) -> GatewayOptions:
    """The section as GatewayOptions (``bacs run`` sets stale_after_s from the poll interval);
    vol.Invalid with the path of the field that is wrong."""
    if not isinstance(data, dict):
        raise vol.Invalid("expected a mapping (modbus:, snmp:, …)")
    v = GATEWAY_SCHEMA(data)
    if "modbus" not in v and "snmp" not in v:
        raise vol.Invalid("serve modbus: HOST:PORT, snmp: HOST:PORT or both")
    if v["commands"] and "modbus" not in v:
        raise vol.Invalid("commands are Modbus writes: they need modbus:", path=["commands"])
    if v["commands"] and not v["allow"]:
        raise vol.Invalid("commands need an allow-list of client addresses", path=["commands"])
    if v["allow"] and not v["commands"]:
        raise vol.Invalid("an allow-list without commands: true has no effect", path=["allow"])
    return GatewayOptions(
        modbus=v.get("modbus"),
        snmp=v.get("snmp"),
        community=v["community"],
        settings=Cs141Settings(string_scale=v["string_scale"], unit=v["unit"]),
        commands=v["commands"],
        allow=tuple(v["allow"]),
    )
