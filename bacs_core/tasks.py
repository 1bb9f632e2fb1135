"""Stopping a source's poll task, whatever the libraries under it do with a cancellation."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` until it is done. pymodbus turns a cancellation inside a request into a
    ModbusIOException (which a cycle survives), so one cancel can be lost; the loops also
    check their stop flag."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError):
        await task
