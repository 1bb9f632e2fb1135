"""A BACS appliance on the network (``bacs run`` elsewhere), read through its MQTT broker.

``RemoteSource`` (source.py) is a Source like the Manager and the GENEREX reader: consumers
(the Home Assistant integration, ``bacs monitor``) get the appliance's own snapshots and
events, and its enabled commands. ``mqtt://`` / ``mqtts://`` addresses are in url.py.
Needs paho-mqtt and mashumaro (``pip install bacs-core[mqtt]``).
"""

from .url import RemoteAddress, RemoteUrlError, is_remote_url, parse_remote_url, remote_url

__all__ = ["RemoteAddress", "RemoteUrlError", "is_remote_url", "parse_remote_url", "remote_url"]
