"""The appliance's own UPS link: a Network UPS Tools (NUT) reader feeding the history.

Inside Home Assistant the UPS comes from HA's own entities (custom_components/bacs/ups.py);
on the appliance ``NutUpsReader`` (``bacs_core.ups.nut``) asks a NUT server (``upsd``)
directly. Both end in the same ``HistoryRecorder.ups_update(UpsStatus(...))``. The reader needs
aionut (``pip install 'bacs-core[ups]'``); the settings here do not, so a site file is checked
and its error explained without it.
"""

from .config import NutSettings, NutUrlError, parse_nut_url, ups_settings

__all__ = ["NutSettings", "NutUrlError", "parse_nut_url", "ups_settings"]
