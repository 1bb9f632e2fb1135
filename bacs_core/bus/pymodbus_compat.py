"""The pymodbus names that differ across the releases bacs-core supports (3.8.3 … <4).

Home Assistant's own Modbus integration pins pymodbus exactly (3.8.3 in 2025.2–2025.6, 3.9.2
in 2025.7–2025.8, 3.11.x from 2025.9, 3.13.1 from 2026.9; see docs/compatibility.md), and one
Home Assistant holds one pymodbus, so bacs-core runs on whichever release it finds there:

- the unit keyword of the client's requests: ``slave=`` until 3.9, ``device_id=`` from 3.10;
- a framer's "decode one frame": ``processIncomingFrame(data)`` in 3.8, ``handleFrame(data,
  exp_devid, exp_tid)`` later; ``bus/frames.py`` answers both, and the simulator's server
  uses the framer's ``decode`` (the same in every release).
"""

from __future__ import annotations

import inspect

from pymodbus.client.mixin import ModbusClientMixin

_REQUEST_PARAMETERS = inspect.signature(ModbusClientMixin.read_holding_registers).parameters
UNIT_KEYWORD = "device_id" if "device_id" in _REQUEST_PARAMETERS else "slave"


def unit_kwargs(unit: int) -> dict[str, int]:
    """The keyword argument that addresses ``unit`` in a client request."""
    return {UNIT_KEYWORD: unit}
