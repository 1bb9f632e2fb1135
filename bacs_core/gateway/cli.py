"""The gateway's options on ``bacs run`` (kept here so run.py only calls two functions)."""

from __future__ import annotations

import argparse

from ..cli.common import integer
from ..generex.cs141_map import Cs141Settings
from .options import GatewayOptions, parse_listen, stale_after


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "gateway for SCADA and NMS (docs/scada.md)",
        "Serve the manager's data as a GENEREX CS141 does (Modbus registers 1000–1059, SNMP "
        "1.3.6.1.2.1.33.5) plus a per-module Modbus block. Read-only and 127.0.0.1 by default.",
    )
    g.add_argument("--serve-modbus", metavar="HOST:PORT", help="Modbus TCP, e.g. 0.0.0.0:502")
    g.add_argument("--serve-snmp", metavar="HOST:PORT", help="SNMP v1/v2c UDP, e.g. 0.0.0.0:161")
    g.add_argument("--gateway-community", default="public", help="SNMP read community")
    g.add_argument(
        "--gateway-unit", type=integer(0, 255), default=1, help="Modbus unit id (default 1)"
    )
    g.add_argument(
        "--gateway-string-scale",
        type=integer(1, 1000),
        default=10,
        help="raw units per V/A in the CS141 string registers (default 10)",
    )
    g.add_argument(
        "--gateway-commands",
        action="store_true",
        help="accept acknowledge and trip reset from the --gateway-allow addresses",
    )
    g.add_argument(
        "--gateway-allow",
        action="append",
        default=[],
        metavar="IP",
        help="a client address allowed to send commands (repeat for more)",
    )


def options_from_args(
    args: argparse.Namespace, poll_interval: float = 10.0
) -> GatewayOptions | None:
    """None when no gateway is asked for; ValueError with a clear message for bad options."""
    if not args.serve_modbus and not args.serve_snmp:
        if args.gateway_commands or args.gateway_allow:
            raise ValueError("--gateway-commands/--gateway-allow need --serve-modbus")
        return None
    return GatewayOptions(
        modbus=parse_listen(args.serve_modbus) if args.serve_modbus else None,
        snmp=parse_listen(args.serve_snmp) if args.serve_snmp else None,
        community=args.gateway_community,
        settings=Cs141Settings(string_scale=args.gateway_string_scale, unit=args.gateway_unit),
        commands=args.gateway_commands,
        allow=tuple(args.gateway_allow),
        stale_after_s=stale_after(poll_interval),
    )
