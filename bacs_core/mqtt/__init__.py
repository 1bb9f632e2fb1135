"""MQTT consumer: Home Assistant discovery, change-only state topics, durable alarms and
trips, and commands, for an appliance that runs the manager away from Home Assistant.

Needs paho-mqtt (``pip install bacs-core[mqtt]``); docs/mqtt.md has the topic layout.
"""

from .config import COMMANDS, MqttSettings, TlsSettings, mqtt_settings
from .topics import Topics

__all__ = ["COMMANDS", "MqttSettings", "TlsSettings", "Topics", "mqtt_settings"]
