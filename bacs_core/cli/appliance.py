"""``bacs run --config site.yaml``: the manager as a service on a computer beside the batteries.

One site file (site_config.py), a state directory (the manager's saved state, the MQTT queue,
a lock so two services never drive one bus), readable or JSON logs, SIGTERM stops cleanly
(shunts off, state saved), SIGHUP reloads what can change live, systemd's notify and watchdog.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from ..events import Event, EventType
from ..manager import FileStorage
from ..sim.clock import SimClock, SimClockError, wall_clock_of
from ..snapshot import SystemSnapshot
from ..source import Source, SourceUnavailableError, open_source
from . import history_run
from .common import quiet_pymodbus
from .sd_notify import Notifier
from .site_config import SiteConfig, SiteConfigError, load_site

_LOG = logging.getLogger("bacs.appliance")
_EVENTS = logging.getLogger("bacs.event")
SUMMARY_EVERY_S = 600.0  # a status line in the log this often, besides every change
_ALARM_EVENTS = {
    EventType.ALARM_RAISED,
    EventType.ALARM_ESCALATED,
    EventType.RUNAWAY_PRE_ALERT,
    EventType.RUNAWAY_DETECTED,
    EventType.TRIP_COUNTDOWN,
    EventType.TRIPPED,
    EventType.TRIP_FAILED,
    EventType.DEVICE_LOST,
    EventType.BUS_LOST,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("appliance (with a YAML site file)")
    g.add_argument(
        "--check-config", action="store_true", help="validate the site file and exit (0 or 2)"
    )
    g.add_argument(
        "--state-dir",
        type=Path,
        help="where the state, the MQTT queue and the lock live "
        "(default: $STATE_DIRECTORY, else ~/.local/state/bacs/SITE)",
    )
    g.add_argument("--log-format", choices=("text", "json"), help="log lines (default text)")
    g.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"), help="info"
    )


def handles(args: argparse.Namespace) -> bool:
    """The appliance runs for a YAML site file or any appliance option (JSON is YAML too)."""
    config: Path | None = args.config
    yaml_file = config is not None and config.suffix.lower() in (".yaml", ".yml")
    return bool(yaml_file or args.check_config or args.state_dir or args.log_format is not None)


def run(args: argparse.Namespace) -> int:
    if args.config is None:
        print("bacs run: --config SITE.yaml is required for the appliance", file=sys.stderr)
        return 2
    if args.urls:
        print("bacs run: give the buses in the site file, not as URLs", file=sys.stderr)
        return 2
    if args.serve_modbus or args.serve_snmp or args.gateway_commands or args.gateway_allow:
        print(
            "bacs run: with a site file the gateway is set in its gateway: section "
            "(docs/appliance.md), not with --serve-modbus/--serve-snmp/--gateway-*",
            file=sys.stderr,
        )
        return 2
    try:
        site = load_site(args.config)
    except SiteConfigError as err:
        print(f"bacs run: {err}", file=sys.stderr)
        return 2
    if args.check_config:
        print(describe(site))
        return 0
    setup_logging(args.log_format or "text", args.log_level)
    quiet_pymodbus()
    state_dir = state_directory(args.state_dir, site.site_id)
    try:
        lock = acquire_state_dir(state_dir)
    except OSError as err:
        _LOG.error("state directory %s: %s", state_dir, err)
        return 1
    try:
        section = site.sections.get("history")
        history = history_run.from_args(getattr(args, "history", None), section)
        clock = SimClock.parse(args.clock) if getattr(args, "clock", None) else None
    except ValueError as err:
        _LOG.error("%s", err)
        lock.close()
        return 2
    try:
        appliance = Appliance(
            site, args.config, state_dir, cycles=args.cycles, history=history, clock=clock
        )
        return asyncio.run(appliance.run())
    finally:
        lock.close()


def describe(site: SiteConfig) -> str:
    m = site.manager
    strings = len(m.strings) if m.strings else m.string_count
    parts = [f"{site.path}: OK", f"site {site.name!r} ({site.site_id})"]
    if site.generex:
        parts.append("GENEREX CS141 (read-only: no equalization, no trip)")
    else:
        parts.append(f"{len(m.buses)} bus{'es' if len(m.buses) != 1 else ''}")
        parts.append(f"{strings} string{'s' if strings != 1 else ''}")
    parts.append(f"poll every {m.poll_interval:g} s")
    if not site.generex:
        parts.append(
            "trip " + ("automatic" if m.trip.auto else f"{len(m.trip.breakers)} breaker(s)")
        )
    mqtt = site.sections.get("mqtt")
    if mqtt is not None:
        tls = " TLS" if mqtt.tls else ""
        commands = ", ".join(sorted(mqtt.commands)) or "none"
        parts.append(f"MQTT {mqtt.host}:{mqtt.port}{tls}, commands: {commands}")
    gateway = site.sections.get("gateway")
    if gateway is not None:
        served = [
            f"{kind} {where[0]}:{where[1]}"
            for kind, where in (("Modbus", gateway.modbus), ("SNMP", gateway.snmp))
            if where is not None
        ]
        access = f"commands from {', '.join(gateway.allow)}" if gateway.commands else "read-only"
        parts.append(f"gateway {', '.join(served)} ({access})")
    parts += describe_history(site)
    return "; ".join(parts)


def describe_history(site: SiteConfig) -> list[str]:
    """The check-config words for the history and the UPS link."""
    history = site.sections.get("history") or history_run.HistorySettings()
    if not history.enabled:
        out = ["history off"]
    else:
        where = f" in {history.path}" if history.path else " in the state directory"
        out = [f"history{where}, every {history.config.float_interval_s:g} s on float"]
    ups = site.sections.get("ups")
    if ups is not None:
        polled = f"every {ups.interval_s:g} s" if history.enabled else "not polled: history off"
        out.append(f"UPS {ups.url} {polled}")
    return out


def state_directory(given: Path | None, site_id: str) -> Path:
    if given is not None:
        return given
    systemd = os.environ.get("STATE_DIRECTORY")  # StateDirectory= in the unit
    if systemd:
        return Path(systemd.split(":")[0])
    return Path.home() / ".local" / "state" / "bacs" / site_id


def acquire_state_dir(path: Path) -> IO[str]:
    """Create the directory, prove it writable and lock it: one appliance per state."""
    path.mkdir(parents=True, exist_ok=True)
    lock = (path / "bacs.lock").open("a+", encoding="utf-8")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise OSError("another bacs run uses this state directory") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


# -- logging ------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line; an event's fields ride along under ``event``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "bacs_event", None)
        if event is not None:
            out["event"] = event
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:  # the journal stamps its lines itself; a terminal or a file needs the time
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _event_record(event: Event) -> dict[str, Any]:
    return {
        "type": event.type.value,
        "time": event.timestamp.isoformat(),
        "device": str(event.device) if event.device else None,
        "string": event.string,
        "data": dict(event.data),
    }


def status_line(snap: SystemSnapshot, mqtt: str | None) -> str:
    modules = sum(len(s.modules) for s in snap.strings)
    online = sum(1 for s in snap.strings for m in s.modules if m.info.online)
    active = sum(1 for a in snap.alarms if a.active)
    parts = [
        f"cycle {snap.cycle}",
        snap.status.value,
        f"{online}/{modules} modules",
        f"{active} active alarm(s)",
        f"trip {snap.safety.trip_state.value}",
        f"poll {snap.poll_duration_s:.2f} s",
    ]
    if mqtt:
        parts.append(mqtt)
    return ", ".join(parts)


# -- the service ------------------------------------------------------------------------------
class Appliance:
    def __init__(
        self,
        site: SiteConfig,
        path: Path,
        state_dir: Path,
        *,
        cycles: int = 0,
        history: history_run.HistorySettings | None = None,
        clock: SimClock | None = None,
    ) -> None:
        self.site = site
        self.path = path
        self.state_dir = state_dir
        self.cycles = cycles
        self.clock = clock  # a simulator's (--clock sim:HOST:PORT); None: the computer's
        wall = wall_clock_of(clock) if clock is not None else None
        storage = FileStorage(state_dir / "manager.json")
        # A bus of our modules (the Manager) or a read-only GENEREX system (generex://).
        self.manager: Source = open_source(
            site.manager.buses[0].url,
            site.manager,
            storage=storage,
            clock=clock,
            wall_clock=wall,
        )
        self.history = self._history(history, wall)
        self.notifier = Notifier()
        self.publisher: Any = None
        self.gateway: Any = None
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._last_snapshot = time.monotonic()
        self._last_status: str | None = None
        self._last_summary = 0.0
        self._count = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        self.manager.add_event_listener(self._log_event)
        self.manager.add_snapshot_listener(self._on_snapshot)
        _LOG.info(
            "starting site %r (%s) from %s, state in %s",
            self.site.name,
            self.site.site_id,
            self.path,
            self.state_dir,
        )
        if not await self._start_clock():
            return 2
        if not self._start_mqtt():
            return 1
        if self.history is not None:
            await self.history.start(self.manager)  # before the manager: its first snapshots
        try:
            await self.manager.start()
        except SourceUnavailableError as err:  # a GENEREX system that does not answer
            _LOG.error("%s", err)
            if self.history is not None:
                await self.history.stop()
            if self.publisher is not None:
                await self.publisher.stop()
            return 1
        if not await self._start_gateway():
            await self.manager.stop()
            if self.history is not None:
                await self.history.stop()
            if self.publisher is not None:
                await self.publisher.stop()
            return 1
        count = len(self.manager.devices)
        if not count:
            _LOG.error("no devices answer on the configured buses; retrying in the background")
        else:
            _LOG.info("found %d devices; running", count)
        self.notifier.notify("READY=1", f"STATUS=running, {count} devices")
        watchdog = loop.create_task(self._watchdog(), name="bacs-watchdog")
        try:
            while not self._stop.is_set():
                reload = loop.create_task(self._reload.wait())
                stop = loop.create_task(self._stop.wait())
                await asyncio.wait({reload, stop}, return_when=asyncio.FIRST_COMPLETED)
                for task in (reload, stop):
                    task.cancel()
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    await self.reload()
        finally:
            _LOG.info("stopping: shunts off, state saved")
            self.notifier.notify("STOPPING=1")
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            if self.gateway is not None:
                await self.gateway.stop()
            await self.manager.stop()
            if self.history is not None:
                await self.history.stop()  # after the manager: its last snapshots written
            if self.clock is not None:
                await self.clock.stop()
            if self.publisher is not None:
                await self.publisher.stop()
            self.notifier.close()
            _LOG.info("stopped")
        return 0

    def _start_mqtt(self) -> bool:
        settings = self.site.sections.get("mqtt")
        if settings is None:
            return True
        try:
            from ..mqtt.publisher import MqttPublisher
        except ImportError as err:
            _LOG.error(
                "mqtt: in the site file needs paho-mqtt (pip install bacs-core[mqtt]): %s", err
            )
            return False
        self.publisher = MqttPublisher(
            self.manager,
            settings,
            site_id=self.site.site_id,
            site_name=self.site.name,
            state_dir=self.state_dir,
            simulated=self.site.simulated,
        )
        self.publisher.start()
        _LOG.info(
            "MQTT to %s:%d as %s/%s",
            settings.host,
            settings.port,
            settings.topic_prefix,
            self.site.site_id,
        )
        return True

    def _history(
        self, settings: history_run.HistorySettings | None, wall: Any
    ) -> history_run.RunHistory | None:
        settings = settings if settings is not None else history_run.HistorySettings()
        directory = settings.directory(self.state_dir)
        ups = self.site.sections.get("ups")
        if directory is None:
            if ups is not None:
                _LOG.warning("ups: the UPS link feeds the history, which is off: not polled")
            return None
        return history_run.RunHistory(directory, settings.config, ups=ups, clock=wall)

    async def _start_clock(self) -> bool:
        if self.clock is None:
            return True
        try:
            await self.clock.start()
        except SimClockError as err:
            _LOG.error("%s", err)
            return False
        return True

    async def _start_gateway(self) -> bool:
        options = self.site.sections.get("gateway")
        if options is None:
            return True
        from ..gateway.options import for_poll_interval
        from ..gateway.service import Gateway, GatewayError

        gateway = Gateway(self.manager, for_poll_interval(options, self.site.manager.poll_interval))
        try:
            await gateway.start()
        except GatewayError as err:
            _LOG.error("gateway: %s", err)
            return False
        self.gateway = gateway
        _LOG.info("%s", gateway.describe())
        return True

    async def reload(self) -> None:
        """SIGHUP: thresholds, equalization, alarms latching and the trip apply now; buses,
        the poll interval, the site's name and MQTT need a restart (and the log says so)."""
        try:
            new = load_site(self.path)
        except SiteConfigError as err:
            _LOG.error("reload refused, the running settings stay: %s", err)
            return
        old = self.site
        restart = []
        if new.manager.buses != old.manager.buses:
            restart.append("buses")
        if new.manager.poll_interval != old.manager.poll_interval:
            restart.append("poll_interval")
        if (new.name, new.site_id) != (old.name, old.site_id):
            restart.append("site")
        if new.sections != old.sections:
            restart.append(
                ", ".join(
                    sorted(
                        k
                        for k in new.sections | old.sections
                        if new.sections.get(k) != old.sections.get(k)
                    )
                )
            )
        if restart:
            _LOG.warning(
                "reload: %s changed and need a restart (systemctl restart bacs); "
                "everything else applies now",
                ", ".join(restart),
            )
        manager_config = new.manager
        if new.manager.buses != old.manager.buses:
            # apply_config keeps the open buses; keep their settings with them.
            manager_config = replace(new.manager, buses=old.manager.buses)
        await self.manager.apply_config(manager_config)
        self.site = new if not restart else old
        _LOG.info("reloaded %s: thresholds, equalization and trip settings applied", self.path)

    def _log_event(self, event: Event) -> None:
        level = logging.WARNING if event.type in _ALARM_EVENTS else logging.INFO
        if event.type is EventType.TRIP_FAILED:
            level = logging.ERROR
        _EVENTS.log(
            level,
            "%s: %s",
            event.type.value,
            event.message,
            extra={"bacs_event": _event_record(event)},
        )

    def _mqtt_state(self) -> str | None:
        p = self.publisher
        if p is None:
            return None
        state = "MQTT connected" if p.connected else "MQTT not connected"
        queued = p.queued()
        return f"{state}, {queued} queued" if queued else state

    def _on_snapshot(self, snap: SystemSnapshot) -> None:
        now = time.monotonic()
        self._last_snapshot = now
        self._count += 1
        line = status_line(snap, self._mqtt_state())
        self.notifier.notify(f"STATUS={line}")
        if snap.status.value != self._last_status or now - self._last_summary >= SUMMARY_EVERY_S:
            self._last_status = snap.status.value
            self._last_summary = now
            _LOG.info("%s", line)
        if self.cycles and self._count >= self.cycles:
            self._stop.set()

    async def _watchdog(self) -> None:
        """WATCHDOG=1 only while the poll cycle makes progress: a cycle stuck for longer
        than the watchdog lets systemd restart the service."""
        interval = self.notifier.watchdog_interval_s()
        if interval is None:
            return
        limit = max(2 * interval, 3 * self.site.manager.poll_interval)
        while True:
            if time.monotonic() - self._last_snapshot <= limit:
                self.notifier.notify("WATCHDOG=1")
            else:
                _LOG.error("no poll cycle for %.0f s: not feeding the watchdog", limit)
            await asyncio.sleep(interval)
