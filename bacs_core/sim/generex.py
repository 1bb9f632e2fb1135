"""The simulator impersonates a GENEREX CS141 / BACS WEB-MANAGER.

The same physics room that feeds our module bus is shown the way a CS141 shows it: the Modbus
registers 1000–1059 and the BACS SNMP subtree (``bacs_core/generex/cs141_map.py``). Faults show
as a CS141 would show them: a dead or frozen module is "lost" (flag bit 2, module state
NOT_INITIALISED, no values), a hot block raises the temperature flag and its module state.
Read-only, like the real one: every write is refused with exception 01.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
from dataclasses import dataclass, field

from ..generex import cs141_map as m
from ..generex.image import Cs141Content, Cs141Image, ModuleContent, StringContent, build_image
from ..generex.modbus_server import Cs141ModbusServer
from ..generex.snmp_agent import serve_snmp
from ..model import MODULE_SPECS, Status
from .physics import ChargerMode
from .room import Room

_MODULE_TYPE = {"C20": 0, "C23": 0, "C30": 10, "C40": 20, "C41": 20}
CHARGE_THRESHOLD_A = 0.5  # beyond float current: charging or discharging


@dataclass(frozen=True, slots=True)
class ImpersonationOptions:
    settings: m.Cs141Settings = field(default_factory=m.Cs141Settings)
    index_base: int = 1
    community: str = "public"


def room_content(room: Room) -> Cs141Content:
    """What a CS141 wired to this room would report (SI units)."""
    spec = MODULE_SPECS[room.config.kind]
    flags = m.GeneralFlag.RUNNING
    strings: list[StringContent] = []
    modules: list[ModuleContent] = []
    baseline = statistics.median(
        s.physics.resistance_mohm(i) for s in room.strings for i in range(len(s.modules))
    )
    r_high = round(2.0 * baseline, 2)
    t_low, t_high = 5.0, 35.0
    module_id = 0
    for s in room.strings:
        p = s.physics
        answered: list[float] = []
        for dev in s.modules:
            module_id += 1
            lost = dev.unit in s.bus.dead or dev.frozen or s.bus.vanished
            if lost:
                flags |= m.GeneralFlag.MODULE_LOST
                modules.append(
                    ModuleContent(module_id, None, None, None, m.ModuleState.NOT_INITIALISED)
                )
                continue
            state = m.ModuleState.OK
            if not spec.v_min <= dev.voltage <= spec.v_max:
                flags |= m.GeneralFlag.VOLTAGE_OUT_OF_RANGE
                state = m.ModuleState.VOLTAGE_ALARM
            if not t_low <= dev.temperature <= t_high:
                flags |= m.GeneralFlag.TEMPERATURE_OUT_OF_RANGE
                state = m.ModuleState.TEMPERATURE_ALARM
            if dev.resistance_mohm > r_high:
                flags |= m.GeneralFlag.RESISTANCE_OUT_OF_RANGE
                state = m.ModuleState.RESISTANCE_ALARM
            if dev.status & Status.BALANCING:
                flags |= m.GeneralFlag.EQUALISATION
            answered.append(dev.voltage)
            modules.append(
                ModuleContent(module_id, dev.voltage, dev.temperature, dev.resistance_mohm, state)
            )
        current = s.sensor.current
        if current < -CHARGE_THRESHOLD_A:
            flags |= m.GeneralFlag.DISCHARGING
        elif current > CHARGE_THRESHOLD_A:
            flags |= m.GeneralFlag.CHARGING
        elif p.breaker_closed and p.mode is ChargerMode.FLOAT:
            flags |= m.GeneralFlag.FLOAT_CHARGING
        complete = len(answered) == len(s.modules)
        strings.append(
            StringContent(
                current_a=current,
                voltage_v=sum(answered) if complete else None,
                average_v=statistics.fmean(answered) if answered else None,
                ac_current_a=0.0,
            )
        )
    return Cs141Content(
        flags=int(flags),
        strings=tuple(strings),
        modules=tuple(modules),
        module_type=_MODULE_TYPE.get(room.config.kind.name, 0),
        capacity_ah=round(room.config.capacity_ah),
        impedance_low_alarm_mohm=round(0.5 * baseline, 2),
        impedance_high_alarm_mohm=r_high,
        temperature_low_alarm_c=t_low,
        temperature_high_alarm_c=t_high,
    )


class Cs141Impersonation:
    """Serves a room as a CS141; the image is rebuilt at most once per simulated step."""

    def __init__(self, room: Room, options: ImpersonationOptions | None = None) -> None:
        self.room = room
        self.options = options or ImpersonationOptions()
        self._image: Cs141Image | None = None
        self._image_time = -1.0
        self._serial = 0
        self.modbus: Cs141ModbusServer | None = None
        self._snmp: asyncio.DatagramTransport | None = None
        self.snmp_port = 0

    def image(self) -> Cs141Image:
        if self._image is None or self._image_time != self.room.time_s:
            self._serial += 1
            self._image = build_image(
                room_content(self.room),
                self.options.settings,
                index_base=self.options.index_base,
                sys_descr="GENEREX CS141 BACS (bacs-core simulator)",
                serial=self._serial,
            )
            self._image_time = self.room.time_s
        return self._image

    async def start(self, modbus: tuple[str, int] | None, snmp: tuple[str, int] | None) -> None:
        if modbus is not None:
            self.modbus = Cs141ModbusServer(
                self.image, modbus[0], modbus[1], unit=self.options.settings.unit
            )
            await self.modbus.start()
        if snmp is not None:
            self._snmp, _ = await serve_snmp(self.image, snmp[0], snmp[1], self.options.community)
            self.snmp_port = self._snmp.get_extra_info("sockname")[1]

    async def stop(self) -> None:
        if self.modbus is not None:
            await self.modbus.stop()
        if self._snmp is not None:
            self._snmp.close()


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``tcp://h:p``, ``udp://h:p``, ``h:p`` or ``:p`` → (host, port)."""
    rest = text.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected host:port")
    return host.strip("[]") or default_host, int(port)


async def serve_impersonation(
    room: Room,
    modbus: str | None,
    snmp_at: tuple[str, int] | None,
    options: ImpersonationOptions,
    speed: float = 1.0,
    control: tuple[str, int] | None = None,
) -> int:
    """``bacs simulate --as generex``: serve until SIGINT/SIGTERM (with ``--control``, the
    fault and scenario channel the demo uses, as for our module bus)."""
    try:
        modbus_at = parse_host_port(modbus) if modbus else None
    except ValueError as err:
        print(f"bacs simulate: {err}")
        return 2
    if modbus_at is None and snmp_at is None:
        modbus_at = ("127.0.0.1", 5020)
    cs141 = Cs141Impersonation(room, options)
    control_server: asyncio.Server | None = None
    try:
        await cs141.start(modbus_at, snmp_at)
        if control is not None:
            from .control import serve_control

            control_server = await serve_control(room, control[0] or "127.0.0.1", control[1])
    except OSError as err:
        print(f"bacs simulate: {err}")
        await cs141.stop()
        return 2
    modules = sum(len(s.modules) for s in room.strings)
    if cs141.modbus is not None:
        print(
            f"CS141 Modbus TCP: {len(room.strings)} strings, {modules} modules on "
            f"tcp://{cs141.modbus.host}:{cs141.modbus.port} unit {options.settings.unit}",
            flush=True,
        )
    if snmp_at is not None:
        print(f"CS141 SNMP v1/v2c: udp://{snmp_at[0]}:{cs141.snmp_port}", flush=True)
    if control_server is not None:
        port = control_server.sockets[0].getsockname()[1]
        print(f"control: tcp://{control[0] if control else ''}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = loop.create_task(room.run(speed))
    await stop.wait()
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    await cs141.stop()
    if control_server is not None:
        control_server.close()
    print("simulator stopped", flush=True)
    return 0
