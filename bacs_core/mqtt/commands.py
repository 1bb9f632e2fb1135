"""Commands from the broker: acknowledge, reset or trip the breaker, identify, set the float
voltage, switch equalization.

Each runs on the manager's event loop through its public API and is answered on the result
topic. A command the site file did not enable is refused (and said so), never silently dropped;
the trip reset keeps the manager's own safety check (SafetyRefusedError while unsafe).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from ..manager import Manager, SafetyRefusedError
from ..manager.config import device_ref
from ..snapshot import DeviceInfo, DeviceRef
from .config import COMMANDS
from .projection import FLOAT_VOLTAGE_RANGE

_LOG = logging.getLogger(__name__)


class CommandError(Exception):
    def __init__(self, error: str, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CommandRequest:
    command: str
    payload: Any  # decoded JSON, or the raw text when it was not JSON
    request_id: str | None


def parse_request(command: str, raw: bytes) -> CommandRequest:
    text = raw.decode("utf-8", errors="replace").strip()
    payload: Any = None
    if text:
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
    request_id = payload.get("id") if isinstance(payload, dict) else None
    return CommandRequest(command, payload, str(request_id) if request_id is not None else None)


class CommandRunner:
    def __init__(self, manager: Manager, enabled: frozenset[str]) -> None:
        self.manager = manager
        self.enabled = enabled
        self.float_voltage: float | None = manager.config.float_voltage

    async def run(self, request: CommandRequest) -> dict[str, Any]:
        """The answer for the result topic: ``ok`` and what happened, or why not."""
        answer: dict[str, Any] = {"command": request.command, "id": request.request_id}
        try:
            if request.command not in COMMANDS:
                raise CommandError("unknown", f"unknown command {request.command!r}")
            if request.command not in self.enabled:
                raise CommandError(
                    "disabled", f"{request.command} is not enabled in this appliance's site file"
                )
            result = await getattr(self, f"_{request.command}")(request.payload)
            if isinstance(result, tuple):  # a message and figures (e.g. how many acknowledged)
                result, figures = result
                answer.update(figures)
            answer.update(ok=True, error=None, message=result)
        except CommandError as err:
            answer.update(ok=False, error=err.error, message=str(err), reason=err.reason)
        except SafetyRefusedError as err:
            answer.update(ok=False, error="refused", message=str(err), reason=err.code)
        except Exception as err:  # a bus error, a device that went away
            _LOG.warning("MQTT command %s failed: %s", request.command, err)
            answer.update(ok=False, error="failed", message=str(err))
        source = request.payload.get("source") if isinstance(request.payload, dict) else None
        _LOG.info(
            "MQTT command %s%s: %s",
            request.command,
            f" from {source}" if source else "",
            "done" if answer["ok"] else f"{answer['error']}: {answer['message']}",
        )
        return answer

    async def _acknowledge(self, payload: Any) -> tuple[str, dict[str, Any]]:
        key = payload.get("key") if isinstance(payload, dict) else None
        count = await self.manager.acknowledge(str(key) if key else None)
        return f"{count} alarm(s) acknowledged", {"count": count}

    def _string(self, payload: Any) -> int | None:
        """``{"string": 2}`` names one string; none (or null) means every string."""
        value = payload.get("string") if isinstance(payload, dict) else None
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CommandError("invalid", f"not a string number: {value!r}")
        snap = self.manager.snapshot
        known = [t.string for t in snap.safety.strings] if snap is not None else []
        if value not in known:
            raise CommandError("invalid", f"no string {value} (strings: {known})")
        return int(value)

    async def _reset_trip(self, payload: Any) -> str:
        string = self._string(payload)
        await self.manager.reset_trip(string)
        return f"string {string} breaker trip reset" if string else "breaker trip reset"

    async def _trip(self, payload: Any) -> str:
        """A person's trip from afar: only ever opens breakers (the reset keeps its checks)."""
        string = self._string(payload)
        reason = payload.get("reason") if isinstance(payload, dict) else None
        source = payload.get("source") if isinstance(payload, dict) else None
        text = str(reason or f"tripped over MQTT{f' by {source}' if source else ''}")[:200]
        await self.manager.trip(text, string)
        return f"string {string} breaker tripped" if string else "breakers tripped"

    async def _set_equalization(self, payload: Any) -> str:
        value = payload.get("enabled") if isinstance(payload, dict) else payload
        if not isinstance(value, bool):
            raise CommandError("invalid", 'give {"enabled": true} or {"enabled": false}')
        await self.manager.set_equalization(value)
        return "equalization on" if value else "equalization off"

    def _target(self, payload: Any) -> DeviceRef:
        if not isinstance(payload, dict) or not ({"device", "serial"} & payload.keys()):
            raise CommandError("invalid", 'give {"device": "bus1/65"} or {"serial": 123456}')
        snap = self.manager.snapshot
        infos: list[DeviceInfo] = []
        if snap is not None:
            for s in snap.strings:
                infos += [m.info for m in s.modules]
            infos += [c.info for c in snap.current_sensors]
            infos += [r.info for r in snap.relays]
            infos += [e.info for e in snap.environment]
        if "serial" in payload:
            for info in infos:
                if str(info.serial) == str(payload["serial"]):
                    return info.ref
            raise CommandError("invalid", f"no device with serial {payload['serial']}")
        try:
            return device_ref(payload["device"])
        except Exception as err:
            raise CommandError("invalid", str(err)) from None

    async def _identify(self, payload: Any) -> str:
        ref = self._target(payload)
        try:
            await self.manager.identify(ref)
        except KeyError as err:
            raise CommandError("invalid", str(err).strip("'\"")) from None
        return f"{ref} is flashing its LED"

    async def _set_float_voltage(self, payload: Any) -> str:
        value = payload.get("value") if isinstance(payload, dict) else payload
        if value in (None, "", "none", "None"):
            volts = None
        else:
            try:
                volts = float(str(value))
            except ValueError:
                raise CommandError("invalid", f"not a voltage: {value!r}") from None
            low, high = FLOAT_VOLTAGE_RANGE
            if not low <= volts <= high:
                raise CommandError("invalid", f"{volts} V is outside {low}..{high} V per block")
        await self.manager.set_float_voltage(volts)
        self.float_voltage = volts
        return f"float voltage {volts} V per block" if volts else "float voltage from chemistry"
