"""What the gateway serves, where, and who may send it commands."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from ..generex.cs141_map import Cs141Settings

LOCALHOST = "127.0.0.1"


class GatewayOptionError(ValueError):
    """A gateway option that cannot be used; the message says which and why."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (then 127.0.0.1); ``tcp://`` / ``udp://`` allowed."""
    rest = text.strip().split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = "", rest
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise GatewayOptionError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:1502")
    return host.strip("[]") or LOCALHOST, int(port)


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """Read-only and bound to 127.0.0.1 unless told otherwise.

    ``commands``: accept acknowledge and trip reset (Modbus writes to the command registers),
    only from the client addresses in ``allow``; a reset is still refused while unsafe.
    ``nice``: the serving process's niceness; SCADA clients polling flat out yield the CPU to
    the manager's poll cycle and its safety loop.
    ``stale_after_s``: without a new snapshot for this long, register 1000 reads 0 (a CS141's
    "internal communication interrupted"); ``bacs run`` sets it to three poll intervals.
    """

    modbus: tuple[str, int] | None = None
    snmp: tuple[str, int] | None = None
    community: str = "public"
    settings: Cs141Settings = field(default_factory=Cs141Settings)
    commands: bool = False
    allow: tuple[str, ...] = ()
    nice: int = 10
    stale_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.modbus is None and self.snmp is None:
            raise GatewayOptionError("serve Modbus, SNMP or both")
        if self.commands and not self.allow:
            raise GatewayOptionError(
                "commands need an allow-list of client addresses (--gateway-allow 10.0.0.5)"
            )
        for host in self.allow:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise GatewayOptionError(
                    f"allow-list entry {host!r} is not an IP address"
                ) from None
        if not self.community:
            raise GatewayOptionError("the SNMP community must not be empty")
        if not 0 <= self.nice <= 19:
            raise GatewayOptionError("nice must be 0…19")
        if self.stale_after_s <= 0:
            raise GatewayOptionError("stale_after_s must be positive")

    def allowed(self, host: str) -> bool:
        return self.commands and host in self.allow


def stale_after(poll_interval: float) -> float:
    """Three poll intervals and ten seconds without a snapshot: the data is stale."""
    return 3 * poll_interval + 10


def for_poll_interval(options: GatewayOptions, poll_interval: float) -> GatewayOptions:
    return replace(options, stale_after_s=stale_after(poll_interval))
