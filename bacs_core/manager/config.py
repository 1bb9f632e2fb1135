"""The manager's configuration: one voluptuous schema for the CLI file and the HA options flow.

Plain dicts in, a typed frozen ``ManagerConfig`` out, and clear messages that name the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol

from ..bus.url import BusUrlError, parse_bus_url
from ..model import FIRST_UNIT_ID, LAST_UNIT_ID, RELAY_CHANNELS, Chemistry
from ..snapshot import DeviceRef
from .breakers import LostBusPolicy, TripScope
from .equalization import EqualizationSettings, TargetMode
from .runaway import RunawaySettings
from .thresholds import THRESHOLD_SCHEMA, Thresholds, thresholds_for

_REF = re.compile(r"^([A-Za-z0-9_-]+)/(\d{1,3})$")
_RANGE = re.compile(r"^([A-Za-z0-9_-]+)/(\d{1,3})-(\d{1,3})$")


# Poll interval bounds. Above 60 s a thermal runaway (confirmed over a few cycles) would be
# seen minutes late, and the modules' watchdog expects to hear from the manager often;
# below 1 s a full bus cannot be read in one interval. The HA options form uses these too.
POLL_INTERVAL_MIN = 1.0
POLL_INTERVAL_MAX = 60.0


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the field."""


def device_ref(value: Any) -> DeviceRef:
    """``"bus1/65"`` or ``{"bus": "bus1", "unit": 65}``."""
    if isinstance(value, DeviceRef):
        return value
    if isinstance(value, dict) and {"bus", "unit"} <= value.keys():
        bus, unit = str(value["bus"]), int(value["unit"])
    else:
        m = _REF.match(str(value))
        if not m:
            raise vol.Invalid(f"expected BUS/UNIT such as bus1/65, got {value!r}")
        bus, unit = m.group(1), int(m.group(2))
    if not FIRST_UNIT_ID <= unit <= LAST_UNIT_ID:
        raise vol.Invalid(f"unit {unit} is outside {FIRST_UNIT_ID}..{LAST_UNIT_ID}")
    return DeviceRef(bus, unit)


def module_list(value: Any) -> list[DeviceRef]:
    """``"bus1/1-32"`` or a list of refs."""
    if isinstance(value, str):
        m = _RANGE.match(value)
        if not m:
            raise vol.Invalid(f"expected BUS/FIRST-LAST such as bus1/1-32, got {value!r}")
        first, last = int(m.group(2)), int(m.group(3))
        if first > last:
            raise vol.Invalid(f"{value!r}: first unit after last")
        return [device_ref(f"{m.group(1)}/{u}") for u in range(first, last + 1)]
    if isinstance(value, list):
        return [device_ref(v) for v in value]
    raise vol.Invalid("modules: a range like bus1/1-32 or a list of BUS/UNIT")


def bus_url(value: Any) -> str:
    """A bus URL, a GENEREX CS141's ``generex://`` or a remote appliance's ``mqtt://``
    (read by bacs_core.source.open_source)."""
    try:
        if str(value).strip().lower().startswith(("mqtt://", "mqtts://")):
            from ..remote.url import parse_remote_url

            parse_remote_url(str(value))
        elif str(value).strip().lower().startswith("generex://"):
            from ..generex.url import parse_generex_url

            parse_generex_url(str(value))
        else:
            parse_bus_url(str(value))
    except (BusUrlError, ValueError) as err:
        raise vol.Invalid(str(err)) from None
    return str(value)


BUS_SCHEMA = vol.Schema(
    {
        vol.Required("id"): vol.Match(r"^[A-Za-z0-9_-]{1,32}$", msg="letters, digits, - or _"),
        vol.Required("url"): bus_url,
        vol.Optional("timeout", default=0.5): vol.All(vol.Coerce(float), vol.Range(0.02, 10)),
        vol.Optional("retries", default=1): vol.All(int, vol.Range(0, 5)),
    }
)

STRING_SCHEMA = vol.Schema(
    {
        vol.Optional("name"): str,
        vol.Required("modules"): module_list,
        vol.Optional("current_sensor"): vol.Any(None, device_ref),
        vol.Optional("capacity_ah"): vol.All(vol.Coerce(float), vol.Range(min=1, max=20000)),
    }
)

EQUALIZATION_SCHEMA = vol.Schema(
    {
        vol.Optional("enabled", default=True): bool,
        vol.Optional("target", default=TargetMode.STRING_SHARE.value): vol.In(
            [m.value for m in TargetMode]
        ),
        vol.Optional("float_voltage_per_cell", default=2.27): vol.All(
            vol.Coerce(float), vol.Range(1.2, 4.3)
        ),
        vol.Optional("temperature_compensation", default=-3.0): vol.All(
            vol.Coerce(float), vol.Range(-10, 0)
        ),
        vol.Optional("float_voltage"): vol.Any(None, vol.All(vol.Coerce(float), vol.Range(1, 20))),
    }
)

RUNAWAY_SCHEMA = vol.Schema(
    {
        vol.Optional("confirm_cycles", default=2): vol.All(int, vol.Range(1, 10)),
        vol.Optional("pre_alert_delta", default=5.0): vol.All(vol.Coerce(float), vol.Range(1, 30)),
        vol.Optional("alarm_delta", default=10.0): vol.All(vol.Coerce(float), vol.Range(2, 40)),
        vol.Optional("trip_delta", default=15.0): vol.All(vol.Coerce(float), vol.Range(3, 50)),
        vol.Optional("max_temperature", default=60.0): vol.All(
            vol.Coerce(float), vol.Range(40, 90)
        ),
    }
)

BREAKER_SCHEMA = vol.Schema(
    {
        vol.Required("relay"): device_ref,
        vol.Required("channel"): vol.All(int, vol.Range(1, RELAY_CHANNELS)),
        vol.Required("input"): vol.All(int, vol.Range(1, RELAY_CHANNELS)),
        # The string this breaker opens; without one it is common to every string.
        vol.Optional("string"): vol.Any(None, vol.All(int, vol.Range(1, 64))),
    }
)

TRIP_SCHEMA = vol.Schema(
    {
        vol.Optional("breakers", default=[]): [BREAKER_SCHEMA],
        vol.Optional("auto", default=False): bool,
        # What a runaway on one string trips: its own breaker(s), or every breaker.
        vol.Optional("scope", default=TripScope.STRING.value): vol.In([t.value for t in TripScope]),
        vol.Optional("pre_trip_delay", default=0.0): vol.All(vol.Coerce(float), vol.Range(0, 3600)),
        vol.Optional("verify_cycles", default=3): vol.All(int, vol.Range(1, 20)),
        vol.Optional("lost_bus_policy", default="hold"): vol.In([p.value for p in LostBusPolicy]),
        vol.Optional("lost_bus_timeout", default=300.0): vol.All(
            vol.Coerce(float), vol.Range(10, 86400)
        ),
    }
)


def _unique_buses(buses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [b["id"] for b in buses]
    if len(ids) != len(set(ids)):
        raise vol.Invalid("bus ids must be unique")
    return buses


CONFIG_SCHEMA = vol.Schema(
    {
        vol.Required("buses"): vol.All([BUS_SCHEMA], vol.Length(min=1), _unique_buses),
        vol.Optional("strings"): vol.All([STRING_SCHEMA], vol.Length(min=1)),
        vol.Optional("string_count", default=1): vol.All(int, vol.Range(1, 64)),
        # Blocks per string, in unit order, for strings of unequal length (e.g. [32, 31]).
        vol.Optional("block_counts"): vol.All(
            [vol.All(int, vol.Range(1, 246 * 8))], vol.Length(min=1, max=64)
        ),
        vol.Optional("chemistry", default=Chemistry.VRLA.value): vol.In(
            [c.value for c in Chemistry]
        ),
        vol.Optional("capacity_ah", default=100.0): vol.All(vol.Coerce(float), vol.Range(1, 20000)),
        vol.Optional("poll_interval", default=10.0): vol.All(
            vol.Coerce(float), vol.Range(POLL_INTERVAL_MIN, POLL_INTERVAL_MAX)
        ),
        vol.Optional("equalization", default={}): EQUALIZATION_SCHEMA,
        vol.Optional("thresholds", default={}): THRESHOLD_SCHEMA,
        vol.Optional("latch_alarms", default=True): bool,
        vol.Optional("runaway", default={}): RUNAWAY_SCHEMA,
        vol.Optional("trip", default={}): TRIP_SCHEMA,
        vol.Optional("storage_path"): vol.Any(None, str),
    }
)


@dataclass(frozen=True, slots=True)
class BusConfig:
    id: str
    url: str
    timeout: float = 0.5
    retries: int = 1


@dataclass(frozen=True, slots=True)
class StringConfig:
    name: str
    modules: tuple[DeviceRef, ...]
    current_sensor: DeviceRef | None
    capacity_ah: float | None


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    relay: DeviceRef
    channel: int
    input: int
    string: int | None = None  # the string it opens; None: every string (a common breaker)


@dataclass(frozen=True, slots=True)
class TripConfig:
    breakers: tuple[BreakerConfig, ...] = ()
    auto: bool = False  # relay module k, channel n ↔ string 4(k−1)+n, input n its feedback
    scope: TripScope = TripScope.STRING  # a runaway trips its own string, or all of them
    pre_trip_delay: float = 0.0
    verify_cycles: int = 3
    lost_bus_policy: LostBusPolicy = LostBusPolicy.HOLD
    lost_bus_timeout: float = 300.0


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    buses: tuple[BusConfig, ...]
    strings: tuple[StringConfig, ...] | None = None  # None: split modules automatically
    string_count: int = 1
    block_counts: tuple[int, ...] | None = None  # blocks per string in unit order
    chemistry: Chemistry = Chemistry.VRLA
    capacity_ah: float = 100.0
    poll_interval: float = 10.0
    equalization: EqualizationSettings = field(default_factory=EqualizationSettings)
    float_voltage: float | None = None  # V per block, overrides the target
    thresholds: Thresholds = field(default_factory=lambda: thresholds_for(Chemistry.VRLA))
    latch_alarms: bool = True
    runaway: RunawaySettings = field(default_factory=RunawaySettings)
    trip: TripConfig = field(default_factory=TripConfig)
    storage_path: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The validated plain form (round-trips through validate_config)."""
        return dict(self.raw)


def validate_config(data: dict[str, Any]) -> ManagerConfig:
    """Validate a plain dict; raises ConfigError with the path of the bad field."""
    try:
        v = CONFIG_SCHEMA(data)
        chemistry = Chemistry(v["chemistry"])
        thresholds = thresholds_for(chemistry, v["thresholds"])
    except vol.MultipleInvalid as err:
        raise ConfigError(_message(err)) from None
    except vol.Invalid as err:
        raise ConfigError(_message(err)) from None
    bus_ids = {b["id"] for b in v["buses"]}
    strings = None
    if "strings" in v:
        strings = tuple(
            StringConfig(
                s.get("name") or f"String {i + 1}",
                tuple(s["modules"]),
                s.get("current_sensor"),
                s.get("capacity_ah"),
            )
            for i, s in enumerate(v["strings"])
        )
        for s in strings:
            for ref in (*s.modules, *([s.current_sensor] if s.current_sensor else [])):
                if ref.bus not in bus_ids:
                    raise ConfigError(f"strings: {s.name} names unknown bus {ref.bus!r}")
    eq = v["equalization"]
    trip = v["trip"]
    string_total = len(strings) if strings is not None else v["string_count"]
    outputs = set()
    for b in trip["breakers"]:
        if b["relay"].bus not in bus_ids:
            raise ConfigError(f"trip.breakers: unknown bus {b['relay'].bus!r}")
        if b.get("string") is not None and b["string"] > string_total:
            raise ConfigError(
                f"trip.breakers: {b['relay']} relay {b['channel']} names string {b['string']}, "
                f"but there are {string_total} strings"
            )
        if (b["relay"], b["channel"]) in outputs:
            raise ConfigError(f"trip.breakers: {b['relay']} relay {b['channel']} is listed twice")
        outputs.add((b["relay"], b["channel"]))
    counts = v.get("block_counts")
    if counts is not None and len(counts) != v["string_count"]:
        raise ConfigError(
            f"block_counts: {len(counts)} counts for {v['string_count']} strings; "
            "give one count per string"
        )
    r = v["runaway"]
    if not r["pre_alert_delta"] < r["alarm_delta"] < r["trip_delta"]:
        raise ConfigError("runaway: pre_alert_delta < alarm_delta < trip_delta is required")
    plain = _plain(v)
    return ManagerConfig(
        buses=tuple(BusConfig(b["id"], b["url"], b["timeout"], b["retries"]) for b in v["buses"]),
        strings=strings,
        string_count=v["string_count"],
        block_counts=tuple(counts) if counts is not None else None,
        chemistry=chemistry,
        capacity_ah=v["capacity_ah"],
        poll_interval=v["poll_interval"],
        equalization=EqualizationSettings(
            enabled=eq["enabled"],
            target=TargetMode(eq["target"]),
            float_voltage_per_cell=eq["float_voltage_per_cell"],
            temperature_compensation=eq["temperature_compensation"],
        ),
        float_voltage=eq.get("float_voltage"),
        thresholds=thresholds,
        latch_alarms=v["latch_alarms"],
        runaway=RunawaySettings(
            pre_alert_delta=r["pre_alert_delta"],
            alarm_delta=r["alarm_delta"],
            trip_delta=r["trip_delta"],
            max_temperature=r["max_temperature"],
            confirm_cycles=r["confirm_cycles"],
        ),
        trip=TripConfig(
            breakers=tuple(
                BreakerConfig(b["relay"], b["channel"], b["input"], b.get("string"))
                for b in trip["breakers"]
            ),
            auto=trip["auto"],
            scope=TripScope(trip["scope"]),
            pre_trip_delay=trip["pre_trip_delay"],
            verify_cycles=trip["verify_cycles"],
            lost_bus_policy=LostBusPolicy(trip["lost_bus_policy"]),
            lost_bus_timeout=trip["lost_bus_timeout"],
        ),
        storage_path=v.get("storage_path"),
        raw=plain,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, DeviceRef):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _message(err: vol.Invalid) -> str:
    errors = err.errors if isinstance(err, vol.MultipleInvalid) else [err]
    parts = []
    for e in errors:
        path = ".".join(str(p) for p in e.path)
        parts.append(f"{path}: {e.msg}" if path else e.msg)
    return "; ".join(parts)
