"""The one place library errors become Home Assistant errors, and the admin check for every
command that moves a relay or acknowledges an alarm.

A refusal (not allowed, not safe now, not this kind of device) is the user's to fix and
raises ``ServiceValidationError``; a command that did not reach the bus is a device
failure and raises ``HomeAssistantError``. Both carry translation keys, never tracebacks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, UnknownUser

from bacs_core.bus.errors import BusError
from bacs_core.manager import SafetyRefusedError
from bacs_core.source import SourceError, UnsupportedCommandError

from .const import DOMAIN


async def async_require_admin(hass: HomeAssistant, context: Context | None) -> None:
    """What ``async_register_admin_service`` checks, with a translated refusal: a call
    without a user (an automation, a script, Home Assistant itself) passes; a user must be
    an administrator."""
    if context is None or not context.user_id:
        return
    user = await hass.auth.async_get_user(context.user_id)
    if user is None:
        raise UnknownUser(context=context)
    if not user.is_admin:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="admin_required",
            translation_placeholders={"user": user.name or user.id},
        )


def translated(error: Exception) -> HomeAssistantError:
    """The Home Assistant error for an exception bacs_core raised on a command."""
    if isinstance(error, UnsupportedCommandError):  # a read-only source (GENEREX)
        return ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_supported",
            translation_placeholders={"error": str(error)},
        )
    if isinstance(error, SafetyRefusedError):
        return ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="safety_refused",
            translation_placeholders={"reason": str(error)},
        )
    if isinstance(error, BusError):
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_failed",
            translation_placeholders={"error": str(error)},
        )
    if isinstance(error, SourceError):  # a remote appliance did not answer or carry it out
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_failed",
            translation_placeholders={"error": str(error)},
        )
    if isinstance(error, KeyError | ValueError):  # the device left the bus, wrong kind, …
        return ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="command_refused",
            translation_placeholders={"error": str(error).strip("'\"")},
        )
    raise TypeError(f"not a bacs_core command error: {error!r}")


COMMAND_ERRORS = (
    UnsupportedCommandError,
    SafetyRefusedError,
    BusError,
    SourceError,
    KeyError,
    ValueError,
)


async def async_run_command[T](command: Awaitable[T]) -> T:
    """Await a manager command; its library errors come out translated."""
    try:
        return await command
    except COMMAND_ERRORS as err:
        raise translated(err) from err


def bacs_command[**P, R](func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate an entity's command method: library errors come out translated."""

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return await async_run_command(func(*args, **kwargs))

    return wrapper
