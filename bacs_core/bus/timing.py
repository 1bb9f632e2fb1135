"""Modbus RTU line timing (../shared/specs/battery-domain.md §6): the simulator emulates it
and the poll benchmark computes its lower bound with the same formula."""

from __future__ import annotations

from dataclasses import dataclass

FIXED_T35_ABOVE_19200_S = 0.00175


@dataclass(frozen=True, slots=True)
class LineTiming:
    baud: int
    bits_per_char: int = 11  # start + 8 data + parity (or 2nd stop) + stop
    turnaround_s: float = 0.005  # module processing time before it answers

    @property
    def char_s(self) -> float:
        return self.bits_per_char / self.baud

    @property
    def gap_s(self) -> float:
        """t3.5: the silence that ends a frame (fixed 1.75 ms above 19200 baud)."""
        return 3.5 * self.char_s if self.baud <= 19200 else FIXED_T35_ABOVE_19200_S

    def transaction_s(self, request_bytes: int, response_bytes: int) -> float:
        """From the first request byte to the last response byte, plus the request's end gap.

        The trailing gap before the next request is added by the caller (``cycle_bound_s``).
        """
        return (request_bytes + response_bytes) * self.char_s + self.gap_s + self.turnaround_s

    def exchange_bound_s(self, request_bytes: int, response_bytes: int) -> float:
        """One complete exchange on the line: both frames, both gaps, the turnaround."""
        return self.transaction_s(request_bytes, response_bytes) + self.gap_s


def read_frame_sizes(registers: int) -> tuple[int, int]:
    """FC03 over RTU: 8-byte request, 5 + 2K byte response."""
    return 8, 5 + 2 * registers
