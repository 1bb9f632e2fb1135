"""Readings → the equalization controller → shunt writes and balancing events, per string.

The controller (equalization.py) is pure; this step feeds it one string's blocks, hands its
shunt currents to the actuators and says what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ..bus import AnyReading
from ..events import Event, EventType
from ..model import MODULE_SPECS, Quality
from ..snapshot import BalancingState, DeviceRef
from .actuators import Actuators
from .equalization import BlockInput, StringInputs
from .observation import module_reading, string_current
from .topology import StringRuntime, Topology


async def equalize_string(
    now: datetime,
    now_s: float,
    s: StringRuntime,
    topology: Topology,
    readings: Mapping[DeviceRef, AnyReading],
    pause: bool,
    actuators: Actuators,
) -> list[Event]:
    blocks: list[BlockInput] = []
    for ref in s.modules:
        m = module_reading(ref, readings)
        spec = MODULE_SPECS[topology.devices[ref].kind]
        ok = m is not None and m.quality is not Quality.MISSING
        blocks.append(
            BlockInput(
                m.voltage.value if m and m.voltage.quality is Quality.OK else None,
                m.temperature.value if m and m.temperature.usable else None,
                m.module_temperature.value if m and m.module_temperature.usable else None,
                spec.cells,
                spec.shunt_max_a,
                ok,
            )
        )
    inputs = StringInputs(blocks, s.charge.state, string_current(s, readings), s.capacity_ah, pause)
    commands = s.controller.update(now_s, inputs)
    previous = s.commands
    s.commands = commands
    for i, ref in enumerate(s.modules):
        amps = commands.shunt[i]
        was = previous.shunt[i] if previous else None
        # Refresh every balancing module each cycle (its watchdog), and write zero once.
        if (amps > 0 or (was is not None and was > 0) or previous is None) and blocks[i].comms_ok:
            await actuators.set_shunt(ref, amps)
    events: list[Event] = []
    active = any(st is BalancingState.ACTIVE for st in commands.state)
    if active != s.balancing:
        kind = EventType.BALANCING_STARTED if active else EventType.BALANCING_FINISHED
        said = "started" if active else "finished"
        events.append(Event(kind, now, f"{s.name}: balancing {said}", string=s.index))
        s.balancing = active
    for i in sorted(commands.out_of_range - s.out_of_range):
        events.append(
            Event(
                EventType.OUT_OF_EQUALIZATION_RANGE,
                now,
                f"{s.name} block {i + 1} is beyond the shunts' reach: check it "
                "(charge deficit, soft short, shorted cell or dry-out)",
                device=s.modules[i],
                string=s.index,
                data={"position": i + 1},
            )
        )
    s.out_of_range = commands.out_of_range
    return events
