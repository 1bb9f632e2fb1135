"""The CS141 map, the URL and the scale check: the rules the public sources give, and our
settings for what they leave open."""

from __future__ import annotations

import pytest

from bacs_core.generex import cs141_map as m
from bacs_core.generex.adapter import check_scale
from bacs_core.generex.image import Cs141Content, ModuleContent, StringContent, build_image
from bacs_core.generex.url import GenerexUrlError, parse_generex_url


def test_string_addresses_follow_1010_plus_5_per_string() -> None:
    assert m.string_address(1, m.StringField.CURRENT) == 1010
    assert m.string_address(2, m.StringField.SUM_VOLTAGE) == 1016
    assert m.string_address(10, m.StringField.AC_CURRENT) == 1058
    assert m.BLOCK_END == 1060
    with pytest.raises(ValueError, match="outside"):
        m.string_address(11, m.StringField.CURRENT)


def test_modules_fill_strings_evenly_in_ascending_id_as_generex_does() -> None:
    # The CS141 manual's example: 72 batteries in 6 strings, id 49 is "string 5, module 1".
    assert m.string_of_module(49, 72, 6) == (5, 1)
    assert m.string_of_module(12, 72, 6) == (1, 12)
    assert m.string_of_module(13, 72, 6) == (2, 1)
    assert m.string_of_module(72, 72, 6) == (6, 12)
    # A remainder stays in the last string.
    assert m.string_of_module(11, 11, 2) == (2, 6)


def test_signed_words_round_trip_and_saturate() -> None:
    assert m.to_s16(m.from_s16(-150)) == -150
    assert m.from_s16(40000) == 0x7FFF
    assert m.to_s16(m.from_s16(-40000)) == -0x8000


def test_general_flags_decode_the_documented_example() -> None:
    flags = m.GeneralFlag(0x0041)
    assert flags == m.GeneralFlag.RUNNING | m.GeneralFlag.FLOAT_CHARGING


def test_image_serves_the_map_and_refuses_what_is_not_there() -> None:
    content = Cs141Content(
        flags=0x41,
        strings=(StringContent(-12.34, 436.2, 13.63),),
        modules=(ModuleContent(1, 13.641, 25.33, 4.826, m.ModuleState.OK),),
    )
    image = build_image(content, m.Cs141Settings(string_scale=10), index_base=0)
    words = image.read(1000, 60)
    assert words is not None
    assert words[:5] == [0x41, 0, 0, 1, 1]
    assert m.to_s16(words[10]) == -123  # -12.34 A at ×10
    assert words[11] == 4362
    assert image.read(1055, 6) is None  # runs past 1059
    assert image.read(999, 1) is None
    assert image.get((*m.MODULE_TABLE, m.ModuleColumn.VOLTAGE, 0)) == 1364
    assert image.get((*m.MODULE_TABLE, m.ModuleColumn.TEMPERATURE, 0)) == 253
    assert image.get((*m.MODULE_TABLE, m.ModuleColumn.RESISTANCE, 0)) == 483
    assert image.get((*m.STRING_TABLE, m.StringColumn.CURRENT, 0)) == -1234
    found = image.next(m.MODULE_TABLE)
    assert found is not None and found[0] == (*m.MODULE_TABLE, 1, 0)


def test_url_defaults_and_options() -> None:
    url = parse_generex_url("generex://cs141.local")
    assert (url.host, url.port, url.snmp_port, url.community) == ("cs141.local", 502, 161, "public")
    assert url.settings == m.Cs141Settings()
    url = parse_generex_url(
        "generex://10.0.0.9:1502?unit=3&snmp=0&community=s3cret&string_scale=100"
        "&current_sign=-1&index_base=0&timeout=0.5"
    )
    assert url.port == 1502 and not url.snmp
    assert url.settings == m.Cs141Settings(100, -1, 3, 0)
    assert "s3cret" not in url.redacted() and "10.0.0.9" not in url.redacted()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("tcp://10.0.0.9", "not a GENEREX URL"),
        ("generex://", "host"),
        ("generex://h?unitt=1", "unknown option 'unitt'"),
        ("generex://h?unit=300", "unit=300"),
        ("generex://h?string_scale=7", "string_scale must be"),
        ("generex://h?index_base=2", "index_base=2"),
        ("generex://h?current_sign=0", "current_sign must be"),
        ("generex://h?timeout=abc", "timeout"),
        ("generex://h?community=", "community"),
        ("generex://h:99999", "port"),
        ("generex://h/path", "no path"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(GenerexUrlError, match=message):
        parse_generex_url(url)


def test_scale_check_reports_the_factor_that_would_match() -> None:
    settings = m.Cs141Settings(string_scale=10)
    assert check_scale("string_voltage", 1, 4362, settings, 436.21) is None
    wrong = check_scale("string_voltage", 1, 43621 - 65536, settings, 436.21)  # saturated? no
    assert wrong is not None
    wrong = check_scale("string_voltage", 1, 436, settings, 436.21)
    assert wrong is not None and wrong.suggested_scale == 1
    assert "string_scale=1 would match" in str(wrong)
    flipped = check_scale("string_current", 2, 123, settings, -12.3)
    assert flipped is not None and flipped.sign_flipped
    # Too small to compare (float current): no verdict either way.
    assert check_scale("string_current", 1, 5, settings, 0.05) is None
    saturated = check_scale("string_voltage", 1, 0x7FFF, m.Cs141Settings(100), 436.21)
    assert saturated is not None and saturated.suggested_scale is None
