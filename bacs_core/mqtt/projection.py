"""From snapshots to MQTT messages: Home Assistant discovery and the values that changed.

Pure (no sockets, no threads): the publisher feeds it snapshots on its own thread and sends
what it returns. A value is sent again only once it moved by a whole display step from what was
last sent, the deadband of the integration's write-on-change; alarms, the trip and the breaker
go at QoS 1 and retained, so a newcomer sees them at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import bacs_core

from ..model import MODULE_SPECS, DeviceFamily, DeviceKind
from ..snapshot import Alarm, Capability, DeviceInfo, SystemSnapshot
from .entities import (
    CURRENT_SENSOR_ENTITIES,
    ENVIRONMENT_ENTITIES,
    HUB_ENTITIES,
    MODULE_ENTITIES,
    STRING_ENTITIES,
    EntitySpec,
    StateValue,
    alarm_record,
    alarm_summary,
    relay_input_entities,
)
from .topics import Topics

MANUFACTURER = "BACS-compatible (bacs-ha protocol)"
MANUFACTURER_SIMULATOR = "bacs-ha simulator"
SOFTWARE_MAKER = "bacs-ha"
MODEL_NAMES = {DeviceKind.GX_R_AUX: "GX-R-AUX", DeviceKind.ENVIRONMENT: "Environment sensor"}
FAMILY_NAMES = {
    DeviceFamily.CURRENT_SENSOR: "Current sensor",
    DeviceFamily.RELAY: "Relay module",
    DeviceFamily.ENVIRONMENT: "Environment sensor",
}
ORIGIN = {
    "name": "bacs-core",
    "sw_version": bacs_core.__version__,
    "support_url": "https://github.com/bacs-ha/bacs-ha",
}
FLOAT_VOLTAGE_RANGE = (1.0, 20.0)  # V per block, as the manager's schema and the HA number


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: str
    qos: int = 0
    retain: bool = True


@dataclass(slots=True)
class Target:
    """One Home Assistant device and its entities' state topics."""

    object_id: str  # the discovery id, also its device identifier
    topic: str  # state topics are <topic>/<key>
    device: dict[str, Any]
    specs: tuple[EntitySpec, ...]
    source: Any
    online: bool | None = None  # None: no availability of its own (hub, strings)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # more components


def block_name(string_name: str, position: int, blocks: int) -> str:
    """ "String 1 block 07", zero-padded as the integration names blocks (HA sorts as text)."""
    return f"{string_name} block {position:0{len(str(max(blocks, position)))}d}"


def identity_key(info: DeviceInfo) -> str:
    """A bus device by family and serial number, never by its address (as the integration)."""
    return f"{info.kind.family.value}-{info.serial}"


def encode(value: StateValue, precision: int | None) -> str:
    if value is None:
        return "None"  # Home Assistant's MQTT sensors read this as "unknown"
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return repr(round(value, (precision if precision is not None else 3) + 2))
    return str(value)


def changed(value: StateValue, before: StateValue, precision: int | None) -> bool:
    """A number counts as changed once it moved a whole display step since it was last sent:
    noise around a rounding boundary would otherwise flip it on most cycles."""
    if (
        isinstance(value, float | int)
        and isinstance(before, float | int)
        and not isinstance(value, bool)
        and not isinstance(before, bool)
        and precision is not None
    ):
        return abs(value - before) >= 0.999 * 10.0**-precision
    return value != before or type(value) is not type(before)


class Projection:
    def __init__(
        self,
        topics: Topics,
        site_name: str,
        *,
        simulated: bool = False,
        discovery: bool = True,
        commands: frozenset[str] = frozenset(),
        diagnostics: bool = False,
    ) -> None:
        self.topics = topics
        self.diagnostics = diagnostics
        self.site_name = site_name
        self.manufacturer = MANUFACTURER_SIMULATOR if simulated else MANUFACTURER
        # Simulated rooms number their devices alike: their serials are unique only per site.
        self._serial_scope = f"{topics.site}-" if simulated else ""
        self.discovery = discovery
        self.commands = commands
        self.float_voltage: float | None = None  # the override, None: from the chemistry
        self.float_voltage_per_cell = 2.27
        self._values: dict[str, StateValue] = {}
        self._texts: dict[str, str] = {}
        self._configs: dict[str, str] = {}
        self.values_seen = 0  # every value of every cycle: what a naive publisher would send
        self.values_per_update = 0  # of the last snapshot

    @property
    def hub_id(self) -> str:
        return f"bacs-{self.topics.site}"

    def reset(self) -> None:
        """Forget what was sent (a new connection, or a broker that lost its retained store)."""
        self._values.clear()
        self._texts.clear()
        self._configs.clear()

    def forget_discovery(self) -> None:
        """Home Assistant (re)started: send discovery again, values with it."""
        self._configs.clear()
        self._values.clear()
        self._texts.clear()

    def device_id(self, info: DeviceInfo) -> str:
        """A bus device's identifier in Home Assistant: by serial, as the integration's."""
        return f"bacs-{self._serial_scope}{identity_key(info)}"

    # -- targets ---------------------------------------------------------------------------
    def _hub_device(self) -> dict[str, Any]:
        return {
            "identifiers": [self.hub_id],
            "name": self.site_name,
            "manufacturer": SOFTWARE_MAKER,
            "model": "BACS manager",
            "sw_version": bacs_core.__version__,
        }

    def _bus_device(self, info: DeviceInfo, name: str, via: str) -> dict[str, Any]:
        return {
            "identifiers": [self.device_id(info)],
            "name": name,
            "manufacturer": self.manufacturer,
            "model": MODEL_NAMES.get(info.kind, info.kind.name),
            "model_id": f"0x{int(info.kind):04X}",
            "serial_number": str(info.serial),
            "sw_version": info.firmware,
            "via_device": via,
        }

    def targets(self, snap: SystemSnapshot) -> list[Target]:
        t = self.topics
        caps = snap.capabilities
        hub = Target(self.hub_id, t.hub, self._hub_device(), self._shown(HUB_ENTITIES, caps), snap)
        hub.extra.update(self._hub_extras(snap))
        out = [hub]
        string_ids: dict[int, str] = {}
        for s in snap.strings:
            sid = f"{self.hub_id}-string-{s.index}"
            string_ids[s.index] = sid
            device = {
                "identifiers": [sid],
                "name": s.name,
                "manufacturer": SOFTWARE_MAKER,
                "model": "Battery string",
                "via_device": self.hub_id,
            }
            target = Target(sid, t.string(s.index), device, self._shown(STRING_ENTITIES, caps), s)
            target.extra["alarms"] = self._alarm_component(
                f"{sid}-alarms", f"{t.string(s.index)}/alarms"
            )
            out.append(target)
            for m in s.modules:
                name = block_name(s.name, m.position, len(s.modules))
                out.append(
                    self._bus_target(
                        m.info,
                        name,
                        sid,
                        t.block(s.index, m.position),
                        self._shown(MODULE_ENTITIES, caps),
                        m,
                    )
                )
        for c in snap.current_sensors:
            via = string_ids.get(c.string or 0, self.hub_id)
            name = f"{FAMILY_NAMES[DeviceFamily.CURRENT_SENSOR]} {c.info.ref.unit}"
            topic = t.device(DeviceFamily.CURRENT_SENSOR.value, c.info.ref)
            out.append(
                self._bus_target(
                    c.info, name, via, topic, self._shown(CURRENT_SENSOR_ENTITIES, caps), c
                )
            )
        for r in snap.relays:
            name = f"{FAMILY_NAMES[DeviceFamily.RELAY]} {r.info.ref.unit}"
            topic = t.device(DeviceFamily.RELAY.value, r.info.ref)
            specs = relay_input_entities(len(r.inputs))
            out.append(
                self._bus_target(r.info, name, self.hub_id, topic, self._shown(specs, caps), r)
            )
        for e in snap.environment:
            name = f"{FAMILY_NAMES[DeviceFamily.ENVIRONMENT]} {e.info.ref.unit}"
            topic = t.device(DeviceFamily.ENVIRONMENT.value, e.info.ref)
            out.append(
                self._bus_target(
                    e.info, name, self.hub_id, topic, self._shown(ENVIRONMENT_ENTITIES, caps), e
                )
            )
        return out

    def _shown(
        self, specs: tuple[EntitySpec, ...], caps: frozenset[Capability]
    ) -> tuple[EntitySpec, ...]:
        """What the source supports; disabled-by-default entities only with ``diagnostics:
        true`` in the site file."""
        return tuple(
            s
            for s in specs
            if (s.needs is None or s.needs in caps) and (self.diagnostics or s.enabled)
        )

    def _bus_target(
        self,
        info: DeviceInfo,
        name: str,
        via: str,
        topic: str,
        specs: tuple[EntitySpec, ...],
        source: Any,
    ) -> Target:
        oid = self.device_id(info)
        target = Target(oid, topic, self._bus_device(info, name, via), specs, source, info.online)
        if "identify" in self.commands:
            payload = json.dumps({"serial": info.serial, "device": str(info.ref)})
            target.extra["identify"] = {
                "platform": "button",
                "unique_id": f"{oid}-identify",
                "name": "Identify",
                "device_class": "identify",
                "entity_category": "config",
                "command_topic": self.topics.command("identify"),
                "payload_press": payload,
                "qos": 1,
            }
        return target

    def _alarm_component(self, uid: str, topic: str) -> dict[str, Any]:
        return {
            "platform": "sensor",
            "unique_id": uid,
            "name": "Alarms",
            "state_topic": topic,
            "value_template": "{{ value_json.summary }}",
            "json_attributes_topic": topic,
            "json_attributes_template": "{{ {'alarms': value_json.alarms} | tojson }}",
            "qos": 1,
        }

    def _hub_extras(self, snap: SystemSnapshot) -> dict[str, dict[str, Any]]:
        t, hub = self.topics, self.hub_id
        extra = {"alarms": self._alarm_component(f"{hub}-alarms", t.alarms)}
        buttons = {
            "acknowledge": ("acknowledge", "Acknowledge alarms", None),
            "reset_trip": ("reset", "Reset breaker", "config"),
        }
        for command, (key, name, category) in buttons.items():
            if command in self.commands:
                extra[key] = {
                    "platform": "button",
                    "unique_id": f"{hub}-{key}",
                    "name": name,
                    "command_topic": t.command(command),
                    "payload_press": json.dumps({"source": "home_assistant"}),
                    "qos": 1,
                    **({"entity_category": category} if category else {}),
                }
        if "set_float_voltage" in self.commands:
            extra["float_voltage"] = {
                "platform": "number",
                "unique_id": f"{hub}-float_voltage",
                "name": "Target float voltage",
                "command_topic": t.command("set_float_voltage"),
                "command_template": '{"value": {{ value }}}',
                "state_topic": f"{t.hub}/float_voltage",
                "min": FLOAT_VOLTAGE_RANGE[0],
                "max": FLOAT_VOLTAGE_RANGE[1],
                "step": 0.01,
                "mode": "box",
                "unit_of_measurement": "V",
                "device_class": "voltage",
                "entity_category": "config",
                "qos": 1,
            }
        return extra

    def _shown_float_voltage(self, snap: SystemSnapshot) -> float | None:
        if self.float_voltage is not None:
            return self.float_voltage
        for s in snap.strings:
            for m in s.modules:
                spec = MODULE_SPECS.get(m.info.kind)
                if spec is not None:
                    return round(self.float_voltage_per_cell * spec.cells, 2)
        return None

    # -- discovery -------------------------------------------------------------------------
    def discovery_payload(self, target: Target) -> dict[str, Any]:
        t = self.topics
        availability = [{"topic": t.availability}]
        if target.online is not None:
            availability.append({"topic": f"{target.topic}/availability"})
        components: dict[str, dict[str, Any]] = {}
        for spec in target.specs:
            comp: dict[str, Any] = {
                "platform": spec.platform,
                "unique_id": f"{target.object_id}-{spec.key}",
                "name": spec.name,
                "state_topic": f"{target.topic}/{spec.key}",
            }
            if spec.unit is not None:
                comp["unit_of_measurement"] = spec.unit
            if spec.device_class is not None:
                comp["device_class"] = spec.device_class
            if spec.state_class is not None:
                comp["state_class"] = spec.state_class
            if spec.precision is not None and spec.platform == "sensor":
                comp["suggested_display_precision"] = spec.precision
            if spec.options is not None:
                comp["options"] = list(spec.options)
            if spec.diagnostic:
                comp["entity_category"] = "diagnostic"
            if not spec.enabled:
                comp["enabled_by_default"] = False
            if spec.qos:
                comp["qos"] = spec.qos
            components[comp["unique_id"]] = comp
        for comp in target.extra.values():
            components[comp["unique_id"]] = comp
        return {
            "device": target.device,
            "origin": ORIGIN,
            "availability": availability,
            "availability_mode": "all",
            "components": components,
        }

    # -- one cycle -------------------------------------------------------------------------
    def update(self, snap: SystemSnapshot) -> list[Message]:
        """What to send for this snapshot: discovery that changed, then values that changed."""
        out: list[Message] = []
        before = self.values_seen
        targets = self.targets(snap)
        if self.discovery:
            out += self._discovery(targets)
        for target in targets:
            if target.online is not None:
                state = "online" if target.online else "offline"
                out += self._text(f"{target.topic}/availability", state, qos=1)
            for spec in target.specs:
                self.values_seen += 1
                value = spec.value(target.source)
                topic = f"{target.topic}/{spec.key}"
                if topic in self._values and not changed(
                    value, self._values[topic], spec.precision
                ):
                    continue
                self._values[topic] = value
                out.append(Message(topic, encode(value, spec.precision), spec.qos))
        out += self._alarm_texts(snap)
        out += self._text(self.topics.safety, json.dumps(_safety(snap), sort_keys=True), qos=1)
        if "set_float_voltage" in self.commands:
            fv = self._shown_float_voltage(snap)
            out += self._text(f"{self.topics.hub}/float_voltage", encode(fv, 2), qos=1)
        self.values_per_update = self.values_seen - before
        return out

    def _discovery(self, targets: Iterable[Target]) -> list[Message]:
        out = []
        seen = set()
        for target in targets:
            seen.add(target.object_id)
            payload = json.dumps(self.discovery_payload(target), sort_keys=True)
            if self._configs.get(target.object_id) != payload:
                self._configs[target.object_id] = payload
                out.append(Message(self.topics.discovery(target.object_id), payload, qos=1))
        for gone in [oid for oid in self._configs if oid not in seen]:
            del self._configs[gone]  # a replaced module: its device leaves Home Assistant
            out.append(Message(self.topics.discovery(gone), "", qos=1))
        return out

    def _text(self, topic: str, text: str, *, qos: int = 0) -> list[Message]:
        self.values_seen += 1
        if self._texts.get(topic) == text:
            return []
        self._texts[topic] = text
        return [Message(topic, text, qos)]

    def _alarm_texts(self, snap: SystemSnapshot) -> list[Message]:
        out = self._text(self.topics.alarms, _alarms_payload(snap.alarms), qos=1)
        for s in snap.strings:
            mine = [a for a in snap.alarms if a.string == s.index]
            out += self._text(f"{self.topics.string(s.index)}/alarms", _alarms_payload(mine), qos=1)
        return out


def _alarms_payload(alarms: Iterable[Alarm]) -> str:
    items = list(alarms)
    return json.dumps(
        {
            "summary": alarm_summary(items),
            "active": sum(1 for a in items if a.active),
            "alarms": [alarm_record(a) for a in items],
        },
        sort_keys=True,
    )


def _safety(snap: SystemSnapshot) -> dict[str, Any]:
    s = snap.safety
    return {
        "trip_state": s.trip_state.value,
        "breaker": s.breaker.value,
        "runaway": s.runaway,
        "pre_alert": s.pre_alert,
        "countdown_s": s.countdown_s,
        "reason": s.reason,
        "tripped_at": s.tripped_at.isoformat() if s.tripped_at else None,
    }
