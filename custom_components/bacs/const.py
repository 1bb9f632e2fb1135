"""Constants shared by the BACS integration's modules."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "bacs"
# The register map is this project's own (docs/protocol.md) and has no vendor field: say what
# the modules speak, not who made them (GENEREX modules do not answer it).
MANUFACTURER: Final = "BACS-compatible (bacs-ha protocol)"
MANUFACTURER_SIMULATOR: Final = "bacs-ha simulator"
SOFTWARE_MAKER: Final = "bacs-ha"  # the manager and the strings it forms
BUS_ID: Final = "bus1"  # one entry = one bus; the manager names it bus1

# entry.data (the connection)
CONF_KIND: Final = "kind"
CONF_URL: Final = "url"
CONF_PORT_PATH: Final = "port"
CONF_BAUDRATE: Final = "baudrate"
CONF_PARITY: Final = "parity"
CONF_HOST: Final = "host"
CONF_TCP_PORT: Final = "tcp_port"
CONF_FRAMING: Final = "framing"
CONF_SIM_NAME: Final = "name"
CONF_SIM_STRINGS: Final = "strings"
CONF_SIM_BLOCKS: Final = "blocks"
CONF_UNIT: Final = "unit"  # a GENEREX web manager's Modbus unit id
CONF_SNMP_PORT: Final = "snmp_port"
CONF_COMMUNITY: Final = "community"
CONF_TLS: Final = "tls"  # a remote appliance's broker: TLS
CONF_TOPIC_PREFIX: Final = "topic_prefix"
CONF_SITE: Final = "site"
# Advanced mode only: the control channel (HOST:PORT) of a `bacs simulate --speed N` that serves
# this bus; the manager then takes the simulator's time (lags and timers run N× too).
CONF_SIM_CONTROL: Final = "sim_control"

KIND_SERIAL: Final = "serial"
KIND_TCP: Final = "tcp"
KIND_SIM: Final = "simulator"
KIND_GENEREX: Final = "generex"  # a GENEREX WEB-MANAGER / CS141 on the network (read-only)
KIND_REMOTE: Final = "remote"  # a BACS appliance (bacs run) elsewhere, through its MQTT broker
MANUFACTURER_GENEREX: Final = "GENEREX"
FRAMING_TCP: Final = "modbus_tcp"
FRAMING_RTU: Final = "rtu_over_tcp"

# entry.options (the manager's configuration, validated by bacs_core)
OPT_POLL_INTERVAL: Final = "poll_interval"
OPT_STRING_COUNT: Final = "string_count"
OPT_BLOCK_COUNTS: Final = "block_counts"
OPT_CAPACITY: Final = "capacity_ah"
OPT_CHEMISTRY: Final = "chemistry"

DEFAULT_POLL_INTERVAL: Final = 10.0
DEFAULT_BAUDRATE: Final = 19200
PARITY_CODES: Final = {"none": "N", "even": "E", "odd": "O"}

EVENT_BACS: Final = "bacs_event"

# Actions
SERVICE_ACKNOWLEDGE: Final = "acknowledge_alarms"
SERVICE_TRIP: Final = "trip_breaker"
SERVICE_RESET: Final = "reset_breaker"
SERVICE_MEASURE: Final = "measure_resistance"
SERVICE_IDENTIFY: Final = "identify"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_DEVICE_ID: Final = "device_id"
ATTR_ALARM_KEY: Final = "alarm_key"
ATTR_REASON: Final = "reason"
ATTR_STRING: Final = "string"

# Repairs
ISSUE_PORT_MISSING: Final = "port_missing"
ISSUE_DEVICES_SILENT: Final = "devices_not_answering"
ISSUE_TRIPPED: Final = "breaker_tripped"
ISSUE_TRIP_FAILED: Final = "breaker_trip_failed"
ISSUE_TRIP_STATE_UNKNOWN: Final = "trip_state_unknown"
ISSUE_APPLIANCE_UNREACHABLE: Final = "appliance_unreachable"  # a remote appliance
