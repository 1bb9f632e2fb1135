"""Shared pieces of the CLI: connecting to a bus with a clear one-line error."""

from __future__ import annotations

import logging

from ..bus import BusClient, BusConnectionError, BusUrlError, open_transport


class CliError(Exception):
    """Printed as one line; the command exits with status 2."""


def quiet_pymodbus() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


async def connect(url: str, *, timeout: float = 0.5) -> BusClient:
    quiet_pymodbus()
    try:
        client = BusClient(open_transport(url, timeout=timeout))
        await client.connect()
    except BusUrlError as err:
        raise CliError(str(err)) from None
    except BusConnectionError as err:
        raise CliError(f"cannot reach {url}: {err}") from None
    return client
