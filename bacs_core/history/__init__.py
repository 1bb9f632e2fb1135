"""Battery history that lasts: an SQLite store fed by the manager's listeners.

``HistoryRecorder(store).attach(manager)`` records block and string samples with adaptive
resolution, events, per-string energy totals and one analysed record per discharge. Nothing
here runs on the poll cycle's critical path: listeners only hand work to a writer thread.
"""

from .codec import BlockSeries, SampleRow
from .config import HistoryConfig
from .discharge import DischargeAnalyzer
from .energy import EnergyMeter, EnergyTotals
from .reader import HistoryReader
from .recorder import HistoryRecorder
from .records import BlockDischarge, DischargeRecord
from .store import HistoryStatus, HistoryStore, StoreState
from .ups import UpsRow, UpsStatus

__all__ = [
    "BlockDischarge",
    "BlockSeries",
    "DischargeAnalyzer",
    "DischargeRecord",
    "EnergyMeter",
    "EnergyTotals",
    "HistoryConfig",
    "HistoryReader",
    "HistoryRecorder",
    "HistoryStatus",
    "HistoryStore",
    "SampleRow",
    "StoreState",
    "UpsRow",
    "UpsStatus",
]
