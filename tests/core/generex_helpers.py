"""Shared by the GENEREX tests: third-party tools and a served impersonation."""

from __future__ import annotations

import asyncio
import shutil

import pytest

MBPOLL = shutil.which("mbpoll")
SNMPWALK = shutil.which("snmpwalk")
SNMPGET = shutil.which("snmpget")
SNMPBULKWALK = shutil.which("snmpbulkwalk")

needs_mbpoll = pytest.mark.skipif(
    MBPOLL is None, reason="Debian's mbpoll is not installed (apt-get install -y mbpoll)"
)
needs_snmp = pytest.mark.skipif(
    SNMPWALK is None or SNMPGET is None,
    reason="Debian's snmp tools are not installed (apt-get install -y snmp)",
)


async def tool(*argv: str) -> tuple[int, str]:
    """Run a command-line client; (exit status, stdout+stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


async def mbpoll_read(port: int, address: int, count: int, *, fc: int = 3) -> dict[int, int]:
    """``mbpoll`` with 0-based references; {address: value as mbpoll prints it}."""
    assert MBPOLL is not None
    kind = ["-t", "4"] if fc == 3 else ["-t", "3"]
    rc, out = await tool(
        MBPOLL, "-m", "tcp", "-p", str(port), "-a", "1", "-0", *kind,
        "-r", str(address), "-c", str(count), "-1", "127.0.0.1",
    )  # fmt: skip
    assert rc == 0, out
    values: dict[int, int] = {}
    for raw in out.splitlines():
        line = raw.strip()
        if line.startswith("[") and "]:" in line:
            ref, _, value = line.partition("]:")
            values[int(ref[1:])] = int(value.split()[0])
    return values


def snmp_values(out: str) -> dict[str, int]:
    """``-On`` output → {".1.3…": INTEGER value}."""
    values: dict[str, int] = {}
    for line in out.splitlines():
        oid, sep, rest = line.partition(" = INTEGER: ")
        if sep:
            values[oid.strip()] = int(rest.split()[0])
    return values
