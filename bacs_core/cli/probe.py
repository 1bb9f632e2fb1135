"""``bacs probe generex://HOST``: is this a GENEREX CS141 / BACS, what does it show, and a
support dump (raw registers and OIDs, no host and no community) to attach to an issue.

Read-only: FC03/FC04 reads and SNMP GETs only. The dump is what settles the unknowns of the
public map (docs/scada.md, "What is not known").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..generex import cs141_map as m
from ..generex.adapter import GenerexAdapter, GenerexUnreachableError
from ..generex.modbus_client import Cs141ModbusError
from ..generex.readings import Cs141Readings
from ..generex.snmp import V1, V2C
from ..generex.snmp_client import SnmpClient, SnmpError, SnmpTarget
from ..generex.url import GenerexUrl, GenerexUrlError, parse_generex_url
from .common import quiet_pymodbus

SCAN_END = 5000  # --scan-registers reads 1060…4999 in blocks: side-effect free, ~32 requests


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "probe",
        help="check whether a host is a GENEREX CS141 / BACS web manager",
        description="Read a GENEREX CS141 / BACS WEB-MANAGER over Modbus TCP and SNMP (read "
        "only), say what it found and write a support dump without secrets.",
    )
    p.add_argument("url", metavar="URL", help="generex://HOST[:PORT]?unit=1&snmp=161&community=…")
    p.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    p.add_argument("--dump", type=Path, help="support dump path (default ./bacs-probe-TIME.json)")
    p.add_argument("--no-dump", action="store_true", help="do not write a support dump")
    p.add_argument(
        "--scan-registers",
        action="store_true",
        help="also read 1060…4999 to find undocumented blocks (the per-module block)",
    )
    p.set_defaults(handler=run)


def _oid(oid: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in oid)


def _plain(value: int | str | tuple[int, ...]) -> int | str:
    return _oid(value) if isinstance(value, tuple) else value


async def _system(url: GenerexUrl, version: int | None) -> dict[str, Any]:
    if not url.snmp or version is None:
        return {}
    target = SnmpTarget(url.host, url.snmp_port, url.community, url.timeout / 2, 1)
    async with SnmpClient(target, version) as client:
        try:
            found = await client.get([m.SYS_DESCR, m.SYS_OBJECT_ID])
        except SnmpError:
            return {}
    return {
        "sysDescr": found.get(m.SYS_DESCR),
        "sysObjectID": _plain(v) if (v := found.get(m.SYS_OBJECT_ID)) is not None else None,
    }


async def _scan(adapter: GenerexAdapter) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for start in range(m.BLOCK_END, SCAN_END, m.MAX_REGISTERS_PER_READ):
        count = min(m.MAX_REGISTERS_PER_READ, SCAN_END - start)
        try:
            words = await adapter.modbus.read(start, count)
        except Cs141ModbusError as err:
            found[f"{start}-{start + count - 1}"] = (
                f"exception {err.code}" if err.code else str(err)
            )
            if err.code is None:
                break
            continue
        nonzero = {start + i: w for i, w in enumerate(words) if w}
        found[f"{start}-{start + count - 1}"] = nonzero or "all zero"
    return found


def findings(readings: Cs141Readings, system: dict[str, Any]) -> dict[str, Any]:
    general = readings.general
    bacs_oids = any(oid[: len(m.BACS)] == m.BACS for oid, _ in readings.raw_oids)
    is_bacs = bool(
        (general is not None and (general.num_modules or general.raw))
        or bacs_oids
        or str(system.get("sysObjectID", "")).startswith(_oid(m.UPS_MIB))
    )
    return {
        "verdict": "GENEREX CS141 / BACS" if is_bacs else "not recognised as a CS141 / BACS",
        "is_bacs": is_bacs,
        "system": system,
        "modbus": {
            "answers": readings.modbus_ok,
            "general_flags": None if general is None else general.raw,
            "flags": [] if general is None else [f.name for f in general.flags],
            "strings_register_1003": None if general is None else general.num_strings,
            "modules_register_1004": None if general is None else general.num_modules,
        },
        "snmp": {
            "answers": readings.snmp_ok,
            "version": readings.snmp_version,
            "index_base": readings.index_base,
            "settings": readings.settings,
        },
        "strings": [
            {
                "index": s.index,
                "voltage_v": s.voltage.value,
                "current_a": s.current.value,
                "average_v": s.average_voltage.value,
                "source": s.source,
            }
            for s in readings.strings
        ],
        "modules": len(readings.modules),
        "modules_lost": [r.module_id for r in readings.modules if r.lost],
        "scale_mismatches": [str(x) for x in readings.mismatches],
        "notes": list(readings.notes),
    }


def support_dump(url: GenerexUrl, readings: Cs141Readings, facts: dict[str, Any]) -> dict[str, Any]:
    """Everything a maintainer needs, nothing that identifies or opens the site."""
    return {
        "tool": "bacs probe",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "url": url.redacted(),
        "settings": asdict(url.settings),
        "findings": facts,
        "raw_registers": {str(a): w for a, w in sorted(readings.raw_registers.items())},
        "raw_oids": {_oid(o): _plain(v) for o, v in readings.raw_oids},
        "modules": [
            {
                "id": r.module_id,
                "string": r.string,
                "position": r.position,
                "voltage_v": r.voltage.value,
                "temperature_c": r.temperature.value,
                "resistance_mohm": r.resistance.value,
                "state": r.state,
            }
            for r in readings.modules
        ],
    }


async def _probe(url: GenerexUrl, scan: bool) -> tuple[Cs141Readings, dict[str, Any]]:
    adapter = GenerexAdapter(url)
    try:
        readings = await adapter.read()
        version = {"2c": V2C, "1": V1}.get(readings.snmp_version or "")
        facts = findings(readings, await _system(url, version))
        facts["modbus"]["function"] = f"FC{adapter.modbus.function:02d}"
        if scan and readings.modbus_ok:
            facts["register_scan"] = await _scan(adapter)
    finally:
        await adapter.close()
    return readings, facts


def _print(facts: dict[str, Any], dump: Path | None) -> None:
    print(facts["verdict"])
    mb, snmp = facts["modbus"], facts["snmp"]
    if mb["answers"]:
        print(
            f"  Modbus: {mb['function']}, flags 0x{mb['general_flags']:04X} "
            f"({', '.join(mb['flags']) or 'none'}), strings {mb['strings_register_1003']}, "
            f"modules {mb['modules_register_1004']}"
        )
    else:
        print("  Modbus: no answer")
    if snmp["answers"]:
        print(f"  SNMP v{snmp['version']}: index base {snmp['index_base']}, {facts['system']}")
    else:
        print("  SNMP: no answer")
    for s in facts["strings"]:
        print(
            f"  string {s['index']}: {s['voltage_v']} V, {s['current_a']} A, "
            f"average {s['average_v']} V (from {s['source']})"
        )
    print(f"  modules: {facts['modules']}, lost: {facts['modules_lost'] or 'none'}")
    for text in facts["scale_mismatches"]:
        print(f"  SCALE MISMATCH: {text}")
    for note in facts["notes"]:
        print(f"  note: {note}")
    if dump is not None:
        print(f"support dump: {dump} (no host, no community; attach it to an issue)")


def run(args: argparse.Namespace) -> int:
    try:
        url = parse_generex_url(args.url)
    except GenerexUrlError as err:
        print(f"bacs probe: {err}", file=sys.stderr)
        return 2
    quiet_pymodbus()
    logging.getLogger("bacs_core.generex").setLevel(logging.ERROR)
    try:
        readings, facts = asyncio.run(_probe(url, args.scan_registers))
    except GenerexUnreachableError as err:
        print(f"bacs probe: nothing answers: {err}", file=sys.stderr)
        return 1
    dump: Path | None = None
    if not args.no_dump:
        dump = args.dump or Path(f"bacs-probe-{datetime.now(UTC):%Y%m%d-%H%M%S}.json")
        data = support_dump(url, readings, facts)
        data["modbus_function"] = facts["modbus"]["function"]
        try:
            dump.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
        except OSError as err:
            print(f"bacs probe: cannot write {dump}: {err}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(facts | {"dump": str(dump) if dump else None}, default=str))
    else:
        _print(facts, dump)
    return 0 if facts["is_bacs"] else 1
