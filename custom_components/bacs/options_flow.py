"""The options flow: the manager's configuration, validated by bacs_core's own schema.

Every number shows its unit and its range, and a value outside gets an error that states the
range; the form says how long a thermal runaway takes to be confirmed at the poll interval
chosen. Thresholds, equalization and the trip apply live (see __init__.py). The forms are in
options_form.py, their numbers in options_fields.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigFlowResult, OptionsFlow

from bacs_core.manager import ConfigError, validate_config

from .const import (
    BUS_ID,
    CONF_KIND,
    CONF_URL,
    KIND_GENEREX,
    KIND_REMOTE,
    OPT_BLOCK_COUNTS,
    OPT_POLL_INTERVAL,
    OPT_STRING_COUNT,
)
from .flow_fields import parse_block_counts
from .options_fields import (
    GENEREX_FIELDS,
    detection_time,
    range_errors,
    range_placeholders,
)
from .options_form import (
    form_defaults,
    generex_form_defaults,
    generex_options_from_form,
    generex_schema,
    options_from_form,
    options_schema,
    relay_choices,
)
from .ups import manager_options


class BacsOptionsFlow(OptionsFlow):
    """The manager's configuration, validated by bacs_core's own schema."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self.config_entry
        if entry.data.get(CONF_KIND) == KIND_GENEREX:
            return await self.async_step_generex(user_input)
        if entry.data.get(CONF_KIND) == KIND_REMOTE:  # its site file rules, where the trip runs
            return self.async_abort(reason="remote_settings")
        errors: dict[str, str] = {}
        placeholders = {"error": "", **range_placeholders()}
        shown: Mapping[str, Any] = entry.options
        if user_input is not None:
            errors = range_errors(user_input)
        if user_input is not None and not errors:
            options = options_from_form(user_input, dict(entry.options))
            shown = options
            options.pop(OPT_BLOCK_COUNTS, None)
            runtime = getattr(entry, "runtime_data", None)
            modules = len(runtime.coordinator.index.modules) if runtime is not None else None
            try:
                counts = parse_block_counts(
                    user_input.get(OPT_BLOCK_COUNTS), options[OPT_STRING_COUNT], modules
                )
            except ValueError:
                errors[OPT_BLOCK_COUNTS] = "block_counts_invalid"
            else:
                if counts:
                    options[OPT_BLOCK_COUNTS] = counts
                if self._valid_config(options, errors, placeholders):
                    return self.async_create_entry(data=options)
        detection, trip = detection_time(shown)
        placeholders["detection"] = f"{detection:g}"
        placeholders["trip_time"] = f"{trip:g}"
        placeholders["poll_interval"] = f"{float(shown.get(OPT_POLL_INTERVAL, 10.0)):g}"
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                options_schema(relay_choices(entry)),
                user_input or form_defaults(dict(entry.options)),
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_generex(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A GENEREX web manager: the poll interval and our alarm rules, nothing it controls."""
        entry = self.config_entry
        errors: dict[str, str] = {}
        placeholders = {"error": "", **range_placeholders()}
        if user_input is not None:
            errors = range_errors(user_input, GENEREX_FIELDS)
        if user_input is not None and not errors:
            options = generex_options_from_form(user_input, dict(entry.options))
            if self._valid_config(options, errors, placeholders):
                return self.async_create_entry(data=options)
        shown = user_input or generex_form_defaults(dict(entry.options))
        return self.async_show_form(
            step_id="generex",
            data_schema=self.add_suggested_values_to_schema(generex_schema(), shown),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _valid_config(
        self, options: dict[str, Any], errors: dict[str, str], placeholders: dict[str, str]
    ) -> bool:
        """bacs_core's own schema on the options with this entry's bus; its refusal is the
        form's error, in its words."""
        bus = {"id": BUS_ID, "url": self.config_entry.data[CONF_URL]}
        try:
            validate_config({**manager_options(options), "buses": [bus]})
        except ConfigError as err:
            errors["base"] = "invalid_config"
            placeholders["error"] = str(err)
            return False
        return True
