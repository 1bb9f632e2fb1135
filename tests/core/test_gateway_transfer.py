"""What the manager's side ships to the serving process: the image's words and values every
cycle, its OID table only when the layout changed; the served image is the one built from the
snapshot, and a message whose values do not fit the table is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bacs_core.gateway.image import gateway_image
from bacs_core.gateway.options import GatewayOptions
from bacs_core.gateway.service import image_message
from bacs_core.gateway.worker import GatewayServing
from bacs_core.manager import Manager, validate_config


async def test_values_every_cycle_oids_only_when_the_layout_changes() -> None:
    url = "sim://transfer?strings=2&blocks=6&seed=2&settle_days=0.1"
    manager = Manager(
        validate_config(
            {"buses": [{"id": "bus1", "url": url}], "string_count": 2, "poll_interval": 60}
        )
    )
    await manager.start(run_loop=False)
    try:
        first, second = await manager.poll_once(), await manager.poll_once()
    finally:
        await manager.stop()
    serving = GatewayServing(GatewayOptions(modbus=("127.0.0.1", 0)))
    a = gateway_image(first, serial=1)
    b = gateway_image(second, serial=2)
    assert a.oids == b.oids and a.values != b.values  # same layout, new readings
    serving.receive_image(image_message(a, same_oids=False))
    message = image_message(b, same_oids=True)
    assert message[2] is None  # the OID table is not sent again
    serving.receive_image(message)
    served = serving.current()
    assert (served.oids, served.values, served.ranges, served.serial) == (
        b.oids,
        b.values,
        b.ranges,
        2,
    )
    assert served.read(1000, 5) == b.read(1000, 5)
    # A module fewer: a new layout, sent with its table.
    shorter = replace(second, strings=(second.strings[0], replace(second.strings[1], modules=())))
    c = gateway_image(shorter, serial=3)
    assert c.oids != b.oids
    serving.receive_image(image_message(c, same_oids=c.oids == b.oids))
    assert serving.current().oids == c.oids
    with pytest.raises(ValueError, match="differ in length"):
        serving.receive_image(image_message(b, same_oids=True))  # b's values, c's table
