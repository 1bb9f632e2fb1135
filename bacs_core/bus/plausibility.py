"""Is a decoded measurement block believable, and did it move enough to be confirmed first?

A frame that passes framing can still carry wrong words: Modbus TCP has no CRC, and a gateway
or a device can glitch. Two checks stand between such words and the manager:
- ``implausible``: bits a device never sets (status, relays, inputs) or fields that cannot
  hold (protocol version) make the whole answer refused;
- ``needs_confirmation``: a value that moved more than ``STEPS`` allows since the last accepted
  answer is read again before it is believed (BusClient), so a one-poll glitch, a flipped
  breaker input or a corrupted byte never reaches the trip logic. The steps sit well above
  measurement noise, so a steady room costs no extra request.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..model import DIGITAL_INPUTS, RELAY_CHANNELS, Status

STATUS_MASK = sum(int(s) for s in Status)
SEQUENCE_JUMP = 4096  # forward counts a device can make between two polls (≈ 1 h at 1 Hz)

# Largest change between two accepted answers that needs no second read (SI units).
# Anything with no entry (status, relays, inputs) must be equal.
STEPS: dict[str, float] = {
    "voltage": 0.02,  # V per block: 10 σ of the 2 mV noise
    "resistance": 0.05,  # mΩ (a new Ri measurement moves it, and is confirmed)
    "temperature": 0.3,  # °C
    "module_temperature": 1.0,  # °C: the shunt heatsink warms fast when balancing starts
    "balance_current": 0.01,  # A
    "current": 0.5,  # A
    "humidity": 1.0,  # %
    "hydrogen": 50.0,  # ppm
    "acid_level": 1.0,  # %
    "ri_sequence": 16.0,
}
COUNTERS = ("sequence",)


def implausible(values: Mapping[str, float]) -> str | None:
    """Why a decoded measurement block cannot come from a working device (None if it can)."""
    status = int(values.get("status", 0))
    if status & ~STATUS_MASK:
        return f"status 0x{status:04x} has bits no device sets"
    for name, width in (("relays", RELAY_CHANNELS), ("inputs", DIGITAL_INPUTS)):
        if name in values and int(values[name]) >> width:
            return f"{name} 0x{int(values[name]):04x} beyond {width} channels"
    return None


def needs_confirmation(previous: Mapping[str, float], new: Mapping[str, float]) -> str | None:
    """Which register moved more than a poll explains (None when the answer can stand)."""
    for name, value in new.items():
        old = previous.get(name)
        if old is None:
            return name
        if name in COUNTERS:
            if (int(value) - int(old)) % 0x10000 > SEQUENCE_JUMP:
                return name
            continue
        step = STEPS.get(name)
        if step is None:
            if value != old:
                return name
        elif abs(value - old) > step:
            return name
    return None


def agree(first: Mapping[str, float], second: Mapping[str, float]) -> bool:
    """Two answers read back to back tell the same story (counters may have moved on)."""
    return needs_confirmation(first, second) is None
