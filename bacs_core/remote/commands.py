"""Commands to a remote appliance: a request on ``<base>/cmd/<name>``, its answer on
``<base>/result`` matched by the request's id, and the answer's error turned back into the
exception the appliance's own manager raised (docs/mqtt.md, "Commands")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from ..manager.latch import SafetyRefusedError
from ..mqtt.topics import Topics
from ..snapshot import DeviceRef
from ..source import SourceError, UnsupportedCommandError

COMMAND_TIMEOUT_S = 15.0  # an answer on the result topic
WHY_NOT_ENABLED = "not enabled in the appliance's site file (mqtt: commands: {command}: true)"
WHY_NOT_REMOTE = "the appliance takes no such command over MQTT; do it on the appliance"


class RemoteCommandError(SourceError):
    """The appliance did not carry a command out (no answer, a bus error there)."""


class CommandChannel:
    """Requests in flight, each waiting for its answer (never longer than ``timeout``)."""

    def __init__(
        self,
        name: str,
        topics: Topics,
        publish: Callable[[str, str, int], None],
        timeout: float = COMMAND_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.topics = topics
        self.publish = publish
        self.timeout = timeout
        self.sent = 0
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def request(self, command: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The appliance's answer when it says ``ok``; else its refusal as an exception:
        SafetyRefusedError (with the manager's code), UnsupportedCommandError (not
        enabled), ValueError (a bad request), RemoteCommandError (failed, or no answer)."""
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        body = {**payload, "id": request_id, "source": "home_assistant"}
        self.sent += 1
        self.publish(self.topics.command(command), json.dumps(body), 1)
        try:
            answer = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise RemoteCommandError(
                f"{command}: {self.name} did not answer within {self.timeout:g} s"
            ) from None
        finally:
            self._pending.pop(request_id, None)
        if answer.get("ok"):
            return answer
        error, message = answer.get("error"), str(answer.get("message") or "")
        if error == "refused":
            raise SafetyRefusedError(str(answer.get("reason") or "refused"), message)
        if error == "disabled":
            raise UnsupportedCommandError(
                command, self.name, WHY_NOT_ENABLED.format(command=command)
            )
        if error in ("invalid", "unknown"):
            raise ValueError(message)
        raise RemoteCommandError(f"{command}: {message or error}")

    def on_result(self, payload: bytes) -> None:
        with contextlib.suppress(ValueError):
            answer = json.loads(payload)
            if isinstance(answer, dict):
                future = self._pending.pop(str(answer.get("id")), None)
                if future is not None and not future.done():
                    future.set_result(answer)

    def close(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RemoteCommandError("the connection to the broker closed"))
        self._pending.clear()


class RemoteCommands:
    """The Source protocol's commands for a remote appliance (RemoteSource's half that
    talks to the appliance's cmd topics)."""

    connected: bool
    appliance_online: bool | None
    _channel: CommandChannel

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def commands(self) -> frozenset[str]:
        """The commands the appliance's site file enables."""
        raise NotImplementedError

    def _linked(self) -> bool:
        raise NotImplementedError

    async def _command(self, command: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One command to the appliance, only if its site file enables it and it can be
        reached; its answer, or its refusal as the library's own exception."""
        if command not in self.commands:
            raise UnsupportedCommandError(
                command, self.name, WHY_NOT_ENABLED.format(command=command)
            )
        if not self._linked() or not self.connected:
            raise RemoteCommandError(f"{command}: not connected to the broker of {self.name}")
        if self.appliance_online is False:
            raise RemoteCommandError(f"{command}: {self.name} is offline")
        return await self._channel.request(command, payload)

    def _unsupported(self, command: str) -> UnsupportedCommandError:
        return UnsupportedCommandError(command, self.name, WHY_NOT_REMOTE)

    async def acknowledge(self, key: str | None = None) -> int:
        answer = await self._command("acknowledge", {"key": key} if key else {})
        return int(answer.get("count", 0))

    async def trip(self, reason: str, string: int | None = None) -> None:
        await self._command("trip", {"reason": reason, "string": string})

    async def reset_trip(self, string: int | None = None) -> None:
        await self._command("reset_trip", {"string": string})

    async def identify(self, ref: DeviceRef) -> None:
        await self._command("identify", {"device": str(ref)})

    async def set_equalization(self, enabled: bool) -> None:
        await self._command("set_equalization", {"enabled": enabled})

    async def set_float_voltage(self, volts: float | None) -> None:
        await self._command("set_float_voltage", {"value": volts})

    async def measure_resistance(self, ref: DeviceRef) -> None:
        raise self._unsupported("measure_resistance")

    async def set_relay(self, ref: DeviceRef, channel: int, on: bool) -> None:
        raise self._unsupported("set_relay")

    async def rescan(self) -> list[DeviceRef]:
        raise self._unsupported("rescan")
