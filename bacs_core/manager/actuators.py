"""Every bus write the manager makes, in one file: a safety review reads this one.

Writes: the trip relays (from the safety engine's decision, or a person's command), shunt
currents (from the equalization controller), module commands (measure resistance,
identify) and every shunt off at stop. Nothing else in the manager writes to a device.
A failed write is logged and never stops the cycle: the next cycle writes again.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Mapping

from ..bus import AnyReading, BusClient, BusError, RelayReading
from ..model import RELAY_CHANNELS, Command, DeviceFamily, Quality
from ..snapshot import DeviceRef
from .topology import Topology

_LOG = logging.getLogger(__name__)
WATCHDOG_CYCLES = 3


def watchdog_for(poll_interval_s: float) -> int:
    """A module's watchdog (s) for a poll interval: its shunt stops by itself after three
    missed cycles (the register holds 1–600 s)."""
    return max(1, min(600, math.ceil(WATCHDOG_CYCLES * poll_interval_s)))


class Actuators:
    def __init__(
        self,
        clients: Mapping[str, BusClient],
        topology: Topology,
        poll_interval: Callable[[], float],
    ) -> None:
        self._clients = clients
        self._topology = topology
        self._poll_interval = poll_interval  # read at each write: the options may change it
        # The relay outputs each module last reported: the other channels of a module are
        # written back as they were, never switched off because one read failed.
        self._relays: dict[DeviceRef, tuple[bool, ...]] = {}

    def observe(self, readings: Mapping[DeviceRef, AnyReading]) -> None:
        for ref, r in readings.items():
            if isinstance(r, RelayReading) and r.relays and r.quality is not Quality.MISSING:
                self._relays[ref] = tuple(r.relays)

    def relay_outputs(self, ref: DeviceRef) -> list[bool]:
        return list(self._relays.get(ref, (False,) * RELAY_CHANNELS))

    async def drive_relays(self, outputs: Mapping[DeviceRef, Mapping[int, bool]]) -> None:
        """The safety decision: {relay: {channel: energised}}. An energised trip channel is
        written every cycle (a module that restarted forgets it); a released one only when
        it differs from what the module reports."""
        for ref, channels in outputs.items():
            dev = self._topology.devices.get(ref)
            client = self._clients.get(ref.bus)
            if dev is None or client is None:
                continue
            current = self.relay_outputs(ref)
            wanted = list(current)
            for channel, on in channels.items():
                wanted[channel - 1] = on
            if wanted != current or any(channels.values()):
                try:
                    await client.set_relays(dev, wanted)
                    self._relays[ref] = tuple(wanted)
                except BusError as err:
                    _LOG.error("cannot drive relay module %s: %s", ref, err)

    async def set_relay(self, ref: DeviceRef, channel: int, on: bool) -> None:
        """A person's command on one channel (not a breaker channel: the manager checks)."""
        dev = self._topology.device(ref, DeviceFamily.RELAY)
        relays = self.relay_outputs(ref)
        relays[channel - 1] = on
        await self._clients[ref.bus].set_relays(dev, relays)
        self._relays[ref] = tuple(relays)

    async def set_shunt(self, ref: DeviceRef, amps: float) -> None:
        """A shunt current and the module's watchdog (≥ 3 poll intervals) in one write (the
        registers are adjacent): the shunt switches itself off if the writes stop. A failure
        is retried next cycle."""
        values = {"balance_setpoint": amps, "watchdog": watchdog_for(self._poll_interval())}
        try:
            await self._clients[ref.bus].write_values(self._topology.devices[ref], values)
        except BusError as err:
            _LOG.debug("shunt write to %s failed: %s", ref, err)

    async def all_shunts_off(self) -> None:
        for s in self._topology.strings:
            for ref in s.modules:
                dev = self._topology.devices.get(ref)
                client = self._clients.get(ref.bus)
                if dev is None or client is None or not client.connected:
                    continue
                with contextlib.suppress(BusError):
                    await client.set_balance(dev, 0.0)

    async def command(self, ref: DeviceRef, command: Command, family: DeviceFamily | None) -> None:
        dev = self._topology.device(ref, family)
        await self._clients[ref.bus].command(dev, command)
