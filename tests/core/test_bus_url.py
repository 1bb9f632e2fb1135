from __future__ import annotations

import pytest

from bacs_core.bus import BusUrlError, Scheme, parse_bus_url


def test_tcp_and_rtu_over_tcp() -> None:
    url = parse_bus_url("tcp://10.0.0.5:5020")
    assert (url.scheme, url.host, url.port) == (Scheme.TCP, "10.0.0.5", 5020)
    assert parse_bus_url("tcp://gateway").port == 502
    assert parse_bus_url("rtu+tcp://moxa:4001").scheme is Scheme.RTU_TCP
    assert "10.0.0.5" not in url.redacted()


def test_serial_options() -> None:
    url = parse_bus_url("serial:///dev/ttyUSB0?baudrate=115200&parity=e&stopbits=2")
    assert (url.path, url.baudrate, url.parity, url.stopbits) == ("/dev/ttyUSB0", 115200, "E", 2)
    assert parse_bus_url("serial:///dev/ttyUSB0").baudrate == 19200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://x:1", "unsupported bus URL"),
        ("tcp://:502", "host is required"),
        ("tcp://host:notaport", "port must be a number"),
        ("serial://dev/ttyUSB0", "three slashes"),
        ("serial:///dev/ttyUSB0?baudrate=12345", "baud rate 12345"),
        ("serial:///dev/ttyUSB0?parity=X", "parity"),
        ("serial:///dev/ttyUSB0?speed=9600", "unknown option"),
        ("serial:///dev/ttyUSB0?baudrate=fast", "are numbers"),
    ],
)
def test_bad_urls_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(BusUrlError, match=message):
        parse_bus_url(text)
