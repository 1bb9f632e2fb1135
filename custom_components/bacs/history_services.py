"""Actions on the battery history: ``bacs.generate_report`` (one HTML page, served behind Home
Assistant's authentication at /api/bacs/report/<entry_id>/<name>) and
``bacs.export_history`` (CSV or JSON Lines in the config directory). Both answer with where
the result is; the work (SQLite, matplotlib) runs in the executor."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import voluptuous as vol
from aiohttp import web
from homeassistant.components.http.auth import async_sign_path
from homeassistant.core import HomeAssistant, ServiceCall, SupportsResponse, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.http import HomeAssistantView
from homeassistant.util import dt as dt_util

from bacs_core.history import HistoryReader, HistoryRecorder
from bacs_core.history.export import ExportFormat, export_discharge, export_period

from . import history
from .const import ATTR_CONFIG_ENTRY_ID, DOMAIN
from .services import _entry

SERVICE_REPORT: Final = "generate_report"
SERVICE_EXPORT: Final = "export_history"
ATTR_DISCHARGE: Final = "discharge"
ATTR_STRING: Final = "string"
ATTR_SINCE: Final = "since"
ATTR_UNTIL: Final = "until"
ATTR_FORMAT: Final = "format"
REPORT_URL: Final = "/api/bacs/report/{entry_id}/{name}"
SIGNED_FOR: Final = timedelta(days=7)  # a link in a notification works this long
NAME = re.compile(r"[A-Za-z0-9_-]{1,80}\.html")
FLUSH_S = 10.0

_WHICH = vol.All(cv.string, vol.Match(r"^(last|\d+|\d{4}-\d{2}-\d{2})$"))
_COMMON = {
    vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
    vol.Optional(ATTR_STRING): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    vol.Optional(ATTR_SINCE): cv.datetime,
    vol.Optional(ATTR_UNTIL): cv.datetime,
}
REPORT_SCHEMA = vol.Schema({**_COMMON, vol.Optional(ATTR_DISCHARGE): _WHICH})
EXPORT_SCHEMA = vol.Schema(
    {
        **_COMMON,
        vol.Optional(ATTR_DISCHARGE): _WHICH,
        vol.Optional(ATTR_FORMAT, default="csv"): vol.In([f.value for f in ExportFormat]),
    }
)


def _recorder(call: ServiceCall) -> tuple[str, HistoryRecorder]:
    entry = _entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    recorder = entry.runtime_data.history
    if recorder is None:  # pragma: no cover - every loaded entry has one
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="history_unavailable")
    return entry.entry_id, recorder


def _period(call: ServiceCall, default_days: float) -> tuple[datetime, datetime]:
    now = dt_util.utcnow()
    until = call.data.get(ATTR_UNTIL) or now
    since = call.data.get(ATTR_SINCE) or until - timedelta(days=default_days)
    tz = dt_util.get_default_time_zone()
    since, until = (t if t.tzinfo else t.replace(tzinfo=tz) for t in (since, until))
    if until <= since:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="bad_period")
    return since, until


def _stamp() -> str:
    return dt_util.now().strftime("%Y%m%d-%H%M%S")


def _refused(err: Exception) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="history_refused",
        translation_placeholders={"error": str(err)},
    )


async def _generate_report(call: ServiceCall) -> dict[str, Any]:
    hass = call.hass
    entry_id, recorder = _recorder(call)
    directory = history.history_dir(hass, entry_id)
    string = call.data.get(ATTR_STRING)
    period = ATTR_SINCE in call.data or ATTR_UNTIL in call.data
    if period and ATTR_DISCHARGE in call.data:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="report_both")
    since, until = _period(call, 30.0) if period else (None, None)
    which = call.data.get(ATTR_DISCHARGE, "last")
    tz = dt_util.get_default_time_zone()
    name = f"{'history' if period else 'discharge'}-{_stamp()}.html"

    def make() -> Path:
        try:
            from bacs_core.report import discharge_report, period_report
        except ImportError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="report_unavailable",
                translation_placeholders={"error": str(err)},
            ) from err
        recorder.writer.flush(FLUSH_S)  # what the recorder holds is in the file
        reader = HistoryReader(directory)
        if since is not None and until is not None:
            page = period_report(reader, since, until, string, tz=tz)
        else:
            page = discharge_report(reader, which, string, tz=tz)
        out = directory / "reports" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
        return out

    try:
        path = await hass.async_add_executor_job(make)
    except (ValueError, FileNotFoundError) as err:  # ReportError is a ValueError
        raise _refused(err) from err
    url = REPORT_URL.format(entry_id=entry_id, name=name)
    return {
        "name": name,
        "path": str(path),
        "url": url,
        "signed_url": async_sign_path(hass, url, SIGNED_FOR, use_content_user=True),
    }


async def _export_history(call: ServiceCall) -> dict[str, Any]:
    hass = call.hass
    entry_id, recorder = _recorder(call)
    directory = history.history_dir(hass, entry_id)
    fmt = ExportFormat(call.data[ATTR_FORMAT])
    string = call.data.get(ATTR_STRING)
    which = call.data.get(ATTR_DISCHARGE)
    since, until = _period(call, 7.0)
    name = f"{'discharge' if which else 'history'}-{_stamp()}.{fmt.value}"

    def export() -> tuple[Path, int]:
        recorder.writer.flush(FLUSH_S)
        reader = HistoryReader(directory)
        out = directory / "exports" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as handle:
            if which:
                record = reader.discharge(which, string)
                if record is None:
                    raise ValueError(f"no discharge {which!r}")
                count = export_discharge(reader, handle, fmt, record)
            else:
                count = export_period(reader, handle, fmt, since, until, string)
        return out, count

    try:
        path, count = await hass.async_add_executor_job(export)
    except (ValueError, FileNotFoundError) as err:
        raise _refused(err) from err
    return {"path": str(path), "samples": count, "format": fmt.value}


class ReportView(HomeAssistantView):
    """The reports, to a logged-in user (or a signed link) only."""

    url = REPORT_URL
    name = "api:bacs:report"
    requires_auth = True

    async def get(self, request: web.Request, entry_id: str, name: str) -> web.StreamResponse:
        hass: HomeAssistant = request.app["hass"]
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN or not NAME.fullmatch(name):
            return web.Response(status=HTTPStatus.NOT_FOUND)
        path = history.history_dir(hass, entry_id) / "reports" / name
        if not await hass.async_add_executor_job(path.is_file):
            return web.Response(status=HTTPStatus.NOT_FOUND)
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "text/html; charset=utf-8",
                # The page is self-contained: nothing to load, nothing to run.
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                "img-src data:",
                "X-Content-Type-Options": "nosniff",
            },
        )


@callback
def async_setup_history_services(hass: HomeAssistant) -> None:
    hass.services.async_register(
        DOMAIN,
        SERVICE_REPORT,
        _generate_report,
        schema=REPORT_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_EXPORT,
        _export_history,
        schema=EXPORT_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.http.register_view(ReportView())
