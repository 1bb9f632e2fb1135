"""The topic layout (docs/mqtt.md): one base per site, one topic per value.

``<prefix>/<site>/…``: ``availability``, ``hub/<key>``, ``string<N>/<key>``,
``string<N>/block<P>/<key>``, ``<family>-<bus>-<unit>/<key>``, ``alarms``, ``safety``,
``snapshot``, ``event``, ``cmd/<command>`` and ``result``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..snapshot import DeviceRef


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    site: str
    discovery_prefix: str = "homeassistant"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def alarms(self) -> str:
        return f"{self.base}/alarms"

    @property
    def safety(self) -> str:
        return f"{self.base}/safety"

    @property
    def snapshot(self) -> str:
        """The whole snapshot for a remote reader (snapshot_codec.py), with ``snapshot: true``."""
        return f"{self.base}/snapshot"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/cmd/+"

    def command(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    @property
    def result(self) -> str:
        return f"{self.base}/result"

    @property
    def hub(self) -> str:
        return f"{self.base}/hub"

    def string(self, index: int) -> str:
        return f"{self.base}/string{index}"

    def block(self, string: int, position: int) -> str:
        return f"{self.base}/string{string}/block{position}"

    def device(self, family: str, ref: DeviceRef) -> str:
        return f"{self.base}/{family}-{ref.bus}-{ref.unit}"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth and last-will topic: discovery is sent again on "online"."""
        return f"{self.discovery_prefix}/status"

    def discovery(self, object_id: str) -> str:
        return f"{self.discovery_prefix}/device/{object_id}/config"
