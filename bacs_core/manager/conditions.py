"""The alarms whose rules live in the manager: the trip path, the state file, frozen data and
the blocks the runaway detector cannot watch. Each key is passed every cycle (held or not).

Keys (stable, for automations): ``safety:state_unknown``, ``safety:state_recovered``,
``safety:state_not_saved``, ``safety:trip_path``, ``safety:trip_failed:STRING`` (one per
string, latched: it stays after the breaker reads open until a person acknowledges it or
resets that string's trip), ``safety:unwatched``, ``stale:BUS/UNIT``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..bus import AnyReading, ModuleReading
from ..model import DeviceFamily, Quality
from ..snapshot import (
    BreakerState,
    DeviceRef,
    SafetySnapshot,
    Severity,
    StringTrip,
    TripState,
    UnwatchedBlock,
)
from .alarms import Condition
from .presence import Presence
from .safety import LATCHED, TripSettings
from .search import missing_relays
from .topology import Topology

UNKNOWN_KEY = "safety:state_unknown"
RECOVERED_KEY = "safety:state_recovered"
NOT_SAVED_KEY = "safety:state_not_saved"
PATH_KEY = "safety:trip_path"
FAILED_KEY = "safety:trip_failed"  # + ":STRING"
UNWATCHED_KEY = "safety:unwatched"
LISTED = 8  # names in one alarm message before "and N more"

_SOURCE = {
    DeviceFamily.BATTERY_MODULE: "module",
    DeviceFamily.CURRENT_SENSOR: "current_sensor",
    DeviceFamily.RELAY: "relay",
    DeviceFamily.ENVIRONMENT: "environment",
}


def _listed(names: Sequence[str]) -> str:
    more = len(names) - LISTED
    return ", ".join(names[:LISTED]) + (f" and {more} more" if more > 0 else "")


def breaker_gaps(settings: TripSettings, topology: Topology, presence: Presence) -> list[str]:
    """The trip relay modules not found yet or not answering, for the alarm message."""
    missing = [str(r) if r else "not found yet" for r in missing_relays(settings, topology)]
    silent = [
        str(b.relay)
        for b in settings.breakers
        if b.relay in topology.devices and not presence.is_online(b.relay)
    ]
    return list(dict.fromkeys(missing + silent))


def failed_key(string: int) -> str:
    return f"{FAILED_KEY}:{string}"


def is_failed_key(key: str, string: int | None) -> bool:
    """Whether ``key`` is the trip-failed alarm of ``string`` (None: of any string)."""
    prefix, _, index = key.rpartition(":")
    return prefix == FAILED_KEY and index.isdigit() and string in (None, int(index))


def _strings(trips: Sequence[StringTrip], everyone: int) -> str:
    """ "" when every string is concerned, else " (string 2)" / " (strings 1, 3)"."""
    if not trips or len(trips) == everyone:
        return ""
    indices = ", ".join(str(t.string) for t in trips)
    return f" ({'string' if len(trips) == 1 else 'strings'} {indices})"


def safety_conditions(
    safety: SafetySnapshot,
    trip_wanted: bool,
    missing_relays: Iterable[str],
    recovered: str | None,
    save_problem: str | None,
) -> list[Condition]:
    strings = safety.strings
    unknown = None
    unknown_strings = [t for t in strings if t.state is TripState.UNKNOWN]
    if safety.trip_state is TripState.UNKNOWN or unknown_strings:
        note = next((t.note for t in unknown_strings if t.note), None) or safety.state_note
        unknown = (
            f"breaker trip state unknown{_strings(unknown_strings, len(strings))}: "
            f"{note or 'state file unreadable'}. The trip relays are left as they are and a "
            "runaway still trips; check the breaker, then reset the trip to confirm"
        )
    path = None
    path_severity = None
    if trip_wanted and not safety.breaker_path_available:
        missing = _listed(list(missing_relays))
        blocked = [t for t in strings if not t.breaker_path_available]
        latched = [t for t in blocked if t.state in LATCHED]
        where = _strings(latched or blocked, len(strings))
        without = [t for t in blocked if t.breaker is BreakerState.UNKNOWN and not missing]
        module = (
            f"trip relay module {missing} does not answer"
            if missing
            else f"no trip breaker for {_listed([f'string {t.string}' for t in without])}"
            if without
            else "the trip relay module does not answer"
        )
        if latched or safety.trip_state in LATCHED:
            path_severity = Severity.CRITICAL
            path = (
                f"breaker trip latched{where} but {module}: it is applied when the module "
                "answers; open the breaker by hand"
            )
        else:
            path_severity = Severity.ALARM
            path = (
                f"automatic trip armed but the breaker path is unavailable{where}: {module}; "
                "a runaway trips when it does"
            )
    return [
        Condition(
            UNKNOWN_KEY, "trip_state_unknown", Severity.CRITICAL if unknown else None, unknown or ""
        ),
        Condition(
            RECOVERED_KEY,
            "state_recovered",
            Severity.WARNING if recovered else None,
            f"state file damaged, the previous copy was used (latch kept): {recovered}"
            if recovered
            else "",
        ),
        Condition(
            NOT_SAVED_KEY,
            "state_not_saved",
            Severity.ALARM if save_problem else None,
            f"the manager state cannot be saved ({save_problem}): a latched trip may "
            "not survive a restart"
            if save_problem
            else "",
        ),
        Condition(PATH_KEY, "trip_path_unavailable", path_severity, path or ""),
        *(
            Condition(
                failed_key(t.string),
                "trip_failed",
                Severity.CRITICAL if t.state is TripState.FAILED else None,
                f"string {t.string}: the breaker did not report open after the trip: open it "
                "by hand, check the trip coil and its wiring",
                string=t.string,
                latch=True,
            )
            for t in strings
        ),
    ]


def unwatched_blocks(
    positions: Iterable[tuple[int, int]],
    topology: Topology,
    readings: Mapping[DeviceRef, AnyReading],
) -> tuple[UnwatchedBlock, ...]:
    strings = {s.index: s for s in topology.strings}
    out: list[UnwatchedBlock] = []
    for string, position in sorted(positions):
        s = strings.get(string)
        ref = s.modules[position - 1] if s and position <= len(s.modules) else None
        r = readings.get(ref) if ref else None
        if not isinstance(r, ModuleReading) or r.quality is Quality.MISSING:
            reason = "missing"
        elif r.quality is Quality.STALE or r.temperature.quality is Quality.STALE:
            reason = "stale"
        elif r.temperature.quality is Quality.OUT_OF_RANGE:
            reason = "out_of_range"
        elif r.temperature.quality is Quality.MISSING:
            reason = "missing"
        else:
            reason = "implausible"
        out.append(UnwatchedBlock(string, position, ref, reason))
    return tuple(out)


def unwatched_condition(blocks: Sequence[UnwatchedBlock]) -> Condition:
    names = [f"string {b.string} block {b.position} ({b.reason})" for b in blocks]
    return Condition(
        UNWATCHED_KEY,
        "runaway_unwatched",
        Severity.ALARM if blocks else None,
        f"thermal-runaway detection cannot watch {_listed(names)}" if blocks else "",
    )


def stale_devices(readings: Mapping[DeviceRef, AnyReading]) -> frozenset[DeviceRef]:
    return frozenset(ref for ref, r in readings.items() if r.quality is Quality.STALE)


def stale_conditions(
    stale: frozenset[DeviceRef], topology: Topology, known: set[DeviceRef]
) -> list[Condition]:
    """One alarm per frozen device; ``known`` (updated) remembers which keys to clear."""
    labels: dict[DeviceRef, tuple[str, int | None]] = {}
    for s in topology.strings:
        for pos, ref in enumerate(s.modules, 1):
            labels[ref] = (f"string {s.index} block {pos} ({ref})", s.index)
    out = []
    for ref in sorted(stale | known, key=lambda r: (r.bus, r.unit)):
        dev = topology.devices.get(ref)
        label, string = labels.get(ref, (f"{dev.kind.name if dev else 'device'} {ref}", None))
        out.append(
            Condition(
                f"stale:{ref}",
                "stale",
                Severity.WARNING if ref in stale else None,
                f"{label} answers but its values are frozen (measurement sequence stopped): "
                "its readings are not used; check or restart the module",
                source=_SOURCE.get(dev.family, "module") if dev else "module",
                device=ref,
                string=string,
            )
        )
    known.clear()
    known.update(stale)
    return out
