"""A line-oriented JSON control channel for a running simulator (demo buttons, scripts).

One JSON object per line in, one per line out. Commands:
``{"fault": "runaway:1:12=3"}``, ``{"clear_fault": "runaway:1:12"}`` (the block cools by the
physics, so a reset becomes permitted), ``{"scenario": "discharge"}``, ``{"close_breaker": 1}``,
``{"press_button": [bus, unit]}``, ``{"status": true}``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .room import Fault, Room, Scenario


def handle_command(room: Room, command: dict[str, Any]) -> dict[str, Any]:
    """Apply one command; the answer says ok or why not. Never raises for bad input."""
    try:
        if "fault" in command:
            room.inject(Fault.parse(str(command["fault"])))
        elif "clear_fault" in command:
            room.clear_fault(Fault.parse(str(command["clear_fault"])))
        elif "scenario" in command:
            room.set_scenario(Scenario(str(command["scenario"])))
        elif "close_breaker" in command:
            room.close_breaker(int(command["close_breaker"]))
        elif "press_button" in command:
            bus, unit = command["press_button"]
            room.press_button(int(bus), int(unit))
        elif "status" not in command:
            return {
                "ok": False,
                "error": "unknown command; use fault, clear_fault, scenario, close_breaker, "
                "press_button or status",
            }
    except (ValueError, KeyError, TypeError, IndexError) as err:
        return {"ok": False, "error": str(err)}
    return {"ok": True, "status": status(room)}


def status(room: Room) -> dict[str, Any]:
    return {
        "time_s": round(room.time_s, 3),
        "speed": room.speed,  # simulated seconds per real second (`bacs run --clock sim:…`)
        "strings": [
            {
                "string": s.index,
                "mode": s.physics.mode.value,
                "current_a": round(s.physics.string_current_a, 3),
                "voltage_v": round(sum(s.physics.voltages), 2),
                "breaker_closed": s.physics.breaker_closed,
                "trip_relay_energised": bool(s.relay.relays[s.channel]),
                "max_temperature_c": round(max(s.physics.temperatures), 2),
            }
            for s in room.strings
        ],
    }


async def serve_control(room: Room, host: str, port: int) -> asyncio.Server:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    command = json.loads(line)
                    if not isinstance(command, dict):
                        raise ValueError("a JSON object is expected")
                    answer = handle_command(room, command)
                except ValueError as err:
                    answer = {"ok": False, "error": f"bad JSON: {err}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(client, host, port)
