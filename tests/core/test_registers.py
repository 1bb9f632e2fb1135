"""The register table is the contract between client, simulator and docs: check its invariants."""

from __future__ import annotations

import itertools

import pytest

from bacs_core import registers as r
from bacs_core.model import DeviceKind


def test_blocks_are_contiguous_and_fit_one_request() -> None:
    for block in r.all_blocks():
        assert 0 < block.count <= 125, block.name  # FC03 reads at most 125 registers
        names = [reg.name for reg in block.registers]
        assert len(names) == len(set(names)), block.name


def test_every_kind_serves_disjoint_blocks() -> None:
    for kind in DeviceKind:
        spans = sorted((b.start, b.start + b.count) for b in r.blocks_for(kind))
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, kind


@pytest.mark.parametrize(
    ("block", "name", "value", "words"),
    [
        (r.MODULE_MEASUREMENT, "voltage", 13.621, [13621]),
        (r.MODULE_MEASUREMENT, "temperature", -12.5, [0x10000 - 1250]),
        (r.CURRENT_MEASUREMENT, "current", -150.25, [0xFFFD, 0xB516]),
        (r.CURRENT_MEASUREMENT, "current", 1.0, [0, 1000]),
        (r.IDENTIFICATION, "serial", 0x12345678, [0x1234, 0x5678]),
    ],
)
def test_encode_decode_round_trip(
    block: r.Block, name: str, value: float, words: list[int]
) -> None:
    reg = block.register(name)
    assert reg.encode(value) == words
    assert reg.decode(words) == pytest.approx(value)


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(r.RegisterError, match="does not fit"):
        r.MODULE_MEASUREMENT.register("voltage").encode(70.0)
    with pytest.raises(r.RegisterError, match="below"):
        r.MODULE_CONTROL.register("balance_setpoint").encode(-0.1)
    with pytest.raises(r.RegisterError, match="above"):
        r.ADDRESSING.register("address").encode(247)


def test_decode_refuses_bad_words() -> None:
    with pytest.raises(r.RegisterError):
        r.MODULE_MEASUREMENT.register("voltage").decode([0x10000])
    with pytest.raises(r.RegisterError):
        r.MODULE_MEASUREMENT.decode([0] * 3)


def test_block_encode_needs_every_value() -> None:
    with pytest.raises(r.RegisterError, match="missing"):
        r.MODULE_CONTROL.encode({"balance_setpoint": 0.1})
    words = r.MODULE_CONTROL.encode({"balance_setpoint": 0.1, "watchdog": 30, "command": 0})
    assert r.MODULE_CONTROL.decode(words) == {"balance_setpoint": 0.1, "watchdog": 30, "command": 0}


def test_kind_labels_match_scan_vocabulary() -> None:
    assert DeviceKind.C20.label == "C20"
    assert DeviceKind.CS500.label == "current_sensor"
    assert DeviceKind.GX_R_AUX.label == "relay"
    assert DeviceKind.ENVIRONMENT.label == "environment"
