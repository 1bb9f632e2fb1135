"""USB discovery fires for RS-485 adapters only, judged by Home Assistant's own matcher
against the manifest: not for Zigbee or Z-Wave sticks, Arduinos or smart-meter cables that
share the same USB-serial chips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.usb.models import USBDevice

try:  # Home Assistant 2025.x
    from homeassistant.components.usb import _is_matching as matches
except ImportError:  # later: the helper is public
    from homeassistant.components.usb.utils import (  # type: ignore[no-redef]
        usb_device_matches_matcher as matches,
    )

MANIFEST = json.loads(
    (Path(__file__).parents[2] / "custom_components/bacs/manifest.json").read_text()
)


def _device(vid: str, pid: str, manufacturer: str | None, description: str | None) -> USBDevice:
    return USBDevice(
        device="/dev/ttyUSB0",
        vid=vid,
        pid=pid,
        serial_number="0001",
        manufacturer=manufacturer,
        description=description,
    )


def _discovered(device: USBDevice) -> bool:
    return any(matches(device, matcher) for matcher in MANIFEST["usb"])


# USB descriptors as those devices report them (vendor, product, manufacturer, product string).
NOT_OURS: dict[str, tuple[str, str, str | None, str | None]] = {
    "Sonoff Zigbee 3.0 USB Dongle Plus (CP2102N)": (
        "10C4",
        "EA60",
        "ITead",
        "Sonoff Zigbee 3.0 USB Dongle Plus",
    ),
    "Sonoff Zigbee 3.0 USB Dongle Plus V2 (CH9102)": (
        "1A86",
        "55D4",
        "ITead",
        "SONOFF Zigbee 3.0 USB Dongle Plus V2",
    ),
    "Zooz ZST10 700 Z-Wave stick (CP2102N)": (
        "10C4",
        "EA60",
        "Silicon Labs",
        "CP2102N USB to UART Bridge Controller",
    ),
    "Aeotec Z-Stick Gen5": ("0658", "0200", None, None),
    "Arduino Nano clone (CH340)": ("1A86", "7523", None, "USB2.0-Serial"),
    "Arduino Uno clone (CH340)": ("1A86", "7523", "QinHeng Electronics", "USB Serial"),
    "Smart-meter IR head (FT232R)": ("0403", "6001", "FTDI", "FT232R USB UART"),
    "ESP32 dev board (CP2102)": ("10C4", "EA60", "Silicon Labs", "CP2102 USB to UART Bridge"),
}

OURS: dict[str, tuple[str, str, str | None, str | None]] = {
    "FTDI USB-RS485-WE cable": ("0403", "6001", "FTDI", "USB-RS485 Cable"),
    "FT230X RS-485 adapter": ("0403", "6015", "FTDI", "USB-RS485 Converter"),
    "CP2102N RS-485 adapter": ("10C4", "EA60", "Silicon Labs", "CP2102N USB to RS485"),
}


@pytest.mark.parametrize("name", NOT_OURS)
def test_silent_for_other_devices(name: str) -> None:
    assert not _discovered(_device(*NOT_OURS[name])), name


@pytest.mark.parametrize("name", OURS)
def test_fires_for_rs485_adapters(name: str) -> None:
    assert _discovered(_device(*OURS[name])), name


def test_every_matcher_is_narrowed() -> None:
    """A bare vid:pid would match every stick built on that chip."""
    matcher: dict[str, Any]
    for matcher in MANIFEST["usb"]:
        assert "description" in matcher or "manufacturer" in matcher, matcher
