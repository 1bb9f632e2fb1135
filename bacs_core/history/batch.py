"""What the recorder hands the writer: one transaction's rows, events and lasting figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..snapshot import StringSnapshot
from .codec import SampleKind, SampleRow
from .energy import EnergyTotals
from .records import DischargeRecord
from .ups import UpsRow


@dataclass(frozen=True, slots=True)
class EventRow:
    t_ms: int
    type: str
    message: str
    device: str | None = None
    string: int | None = None
    data: str | None = None  # JSON


@dataclass(frozen=True, slots=True)
class EnvironmentRow:
    t_ms: int
    device: str
    temperature: float | None
    humidity: float | None
    hydrogen: float | None
    acid_level: float | None


@dataclass(slots=True)
class WriteBatch:
    """Everything one transaction writes. Energy totals and discharges are idempotent
    (latest wins), so a batch that failed can be merged into the next one."""

    samples: list[SampleRow] = field(default_factory=list)
    # Snapshots to encode on the writer thread (the ring's minutes before an alarm):
    pending: list[tuple[int, SampleKind, StringSnapshot]] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    environment: list[EnvironmentRow] = field(default_factory=list)
    discharges: list[DischargeRecord] = field(default_factory=list)
    energy: dict[int, EnergyTotals] = field(default_factory=dict)
    energy_t_ms: int = 0
    layout: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)
    ups: list[UpsRow] = field(default_factory=list)  # small: kept like events

    def __bool__(self) -> bool:
        return bool(
            self.samples
            or self.pending
            or self.events
            or self.environment
            or self.discharges
            or self.energy
            or self.layout
            or self.ups
        )

    @property
    def sample_count(self) -> int:
        return len(self.samples) + len(self.pending)

    def drop_samples(self) -> None:
        self.samples, self.pending, self.environment = [], [], []

    def merge(self, other: WriteBatch) -> None:
        self.samples += other.samples
        self.pending += other.pending
        self.events += other.events
        self.environment += other.environment
        self.discharges += other.discharges
        self.layout += other.layout
        self.ups += other.ups
        if other.energy:
            self.energy = dict(other.energy)
            self.energy_t_ms = other.energy_t_ms
