"""The appliance's own UPS link: a Network UPS Tools (NUT) reader feeding the history.

Inside Home Assistant the UPS comes from HA's own entities (custom_components/bacs/ups.py);
on the appliance ``NutUpsReader`` asks a NUT server (``upsd``) directly. Both end in the same
``HistoryRecorder.ups_update(UpsStatus(...))``. Needs aionut (``pip install 'bacs-core[ups]'``).
"""

from .config import NutSettings, NutUrlError, parse_nut_url, ups_settings
from .nut import NutUpsReader, status_from_vars

__all__ = [
    "NutSettings",
    "NutUpsReader",
    "NutUrlError",
    "parse_nut_url",
    "status_from_vars",
    "ups_settings",
]
