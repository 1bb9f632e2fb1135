"""Shared pieces of the CLI: option types that refuse bad input in one line, and connecting to
a bus with a clear one-line error. Every refusal exits with status 2."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable
from typing import NoReturn

from ..bus import BusClient, BusConnectionError, BusUrlError, open_transport
from ..bus.url import check_host, short_repr

LOCALHOST = "127.0.0.1"


class CliError(Exception):
    """Printed as one line; the command exits with status 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (``bacs scan: argument --timeout: …``)
    instead of the usage block, and exits 2 like every other refusal."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def number(
    lo: float | None = None, hi: float | None = None, *, above: bool = False
) -> Callable[[str], float]:
    """A finite float in [lo, hi] (``above``: strictly greater than lo)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{short_repr(text)} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{short_repr(text)} is not a finite number")
        if lo is not None and (value <= lo if above else value < lo):
            raise argparse.ArgumentTypeError(
                f"{text} must be {'above' if above else 'at least'} {lo:g}"
            )
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{text} must be at most {hi:g}")
        return value

    return parse


def integer(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{short_repr(text)} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is not in {lo}..{hi}")
        return value

    return parse


def host_port(text: str, *, default_host: str = LOCALHOST) -> tuple[str, int]:
    """``[tcp://][HOST:]PORT`` → (host, port); no host means this machine only (127.0.0.1)."""
    rest = text.removeprefix("tcp://")
    host, sep, port_text = rest.rpartition(":")
    if not sep:
        host, port_text = "", rest
    host = host.removeprefix("[").removesuffix("]") or default_host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(f"{short_repr(text)}: the port must be a number 0..65535")
    if problem := check_host(host):
        raise argparse.ArgumentTypeError(f"{short_repr(text)}: {problem}")
    return host, int(port_text)


def listen_url(text: str) -> str:
    """``tcp://HOST:PORT``, ``rtu+tcp://HOST:PORT`` (port 0 = any free port) or ``pty:///path``."""
    scheme, sep, rest = text.partition("://")
    if sep and scheme == "pty":
        if not rest.startswith("/"):
            raise argparse.ArgumentTypeError(f"{short_repr(text)}: a pty needs an absolute path")
        return text
    if not sep or scheme not in ("tcp", "rtu+tcp"):
        raise argparse.ArgumentTypeError(
            f"{short_repr(text)}: use tcp://HOST:PORT, rtu+tcp://HOST:PORT or pty:///path"
        )
    if ":" not in rest:
        raise argparse.ArgumentTypeError(f"{short_repr(text)}: give HOST:PORT")
    host, port = host_port(rest)
    return f"{scheme}://{host}:{port}"


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
