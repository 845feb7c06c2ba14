"""Configuration: one TOML file plus ``SLA_MONITOR_*`` environment overrides, validated up front.

Environment variables override the file; nested fields use ``__``, for example
``SLA_MONITOR_DATABASE__DSN`` or ``SLA_MONITOR_DAEMON__POLL_INTERVAL=30s``. The sections are
defined in ``sla_monitor.schema``; this module loads them and builds the engine's objects.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sla_monitor.engine import Policy, PolicyRule, PolicySet, StatusMap
from sla_monitor.engine.calendar_protocol import Calendar, ContinuousCalendar
from sla_monitor.engine.escalation import EscalationLevel, Trigger
from sla_monitor.engine.model import Clock
from sla_monitor.engine.policy import Reopen
from sla_monitor.schema import PolicySettings, Settings, dsn_problem, parse_duration

# Re-exported: callers import the configuration's entry points from here.
__all__ = [
    "EX_CONFIG",
    "ConfigError",
    "PolicySettings",
    "Settings",
    "config_path",
    "dsn_problem",
    "escalation_levels",
    "load_settings",
    "parse_duration",
    "policy_set",
]

DEFAULT_CONFIG_PATH = Path("/etc/sla-monitor/sla-monitor.toml")
EX_CONFIG = 78


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file and the field."""

    exit_code = EX_CONFIG


# Names of settings whose values are never shown, misspellings included ("rt_pasword",
# "dns" for "dsn"): the value of a mistyped secret key is still a secret.
_SECRET_NAME = re.compile(r"pas+w|passwd|pwd|tok|secret|key|dsn|dns|url|uri|webhook|cred", re.I)
# A URL with a password, or a libpq password=..., whatever field it was put in.
_HOLDS_PASSWORD = re.compile(r"://[^\s@/]*:\S*@|password\s*=", re.I)


def _may_show(item: Any) -> bool:
    """Whether an error may quote its input: not for unknown keys (their meaning is unknown),
    secret-looking names, or anything carrying a password."""
    given = item.get("input")
    if given is None or isinstance(given, dict | list) or item["type"] == "extra_forbidden":
        return False
    if any(isinstance(part, str) and _SECRET_NAME.search(part) for part in item["loc"]):
        return False
    return not _HOLDS_PASSWORD.search(str(given))


def _known_fields(location: tuple[Any, ...]) -> list[str]:
    """The setting names allowed where ``location`` points (the section of an unknown key)."""
    model: Any = Settings
    for part in location[:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return []
            model = field.annotation
        elif typing.get_origin(model) in (dict, list):
            model = typing.get_args(model)[-1]
        else:
            return []
        while typing.get_origin(model) in (typing.Union, types.UnionType):
            model = next(a for a in typing.get_args(model) if a is not type(None))
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _format_errors(origin: str, error: ValidationError) -> str:
    """One line per problem naming the field and what was expected; a value is quoted only
    when it cannot be a secret (see ``_may_show``)."""
    lines = [f"invalid configuration ({origin}):"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        given = item.get("input")
        if item["type"] == "extra_forbidden":
            known = _known_fields(tuple(item["loc"]))
            message = f"{message}: unknown setting" + (
                f" (known: {', '.join(known)})" if known else ""
            )
        if _may_show(item):
            shown = "" if repr(given) in message else f" (got {given!r})"
        else:
            shown = ""
            if given is not None:
                # Our own validators quote what they got ({value!r}); cut a hidden value out.
                message = message.replace(repr(given), "<hidden>")
        lines.append(f"  {location}: {message}{shown}")
    return "\n".join(lines)


def config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The file to read: the one given, else $SLA_MONITOR_CONFIG, else /etc/... if present."""
    if explicit is not None:
        return Path(explicit)
    if env := os.environ.get("SLA_MONITOR_CONFIG"):
        return Path(env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Reads and validates the configuration, raising ConfigError with every problem found."""
    file = config_path(path)
    data: dict[str, Any] = {}
    origin = "environment only"
    if file is not None:
        origin = str(file)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {file} does not exist") from None
        except OSError as error:
            raise ConfigError(f"cannot read configuration file {file}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{file} is not valid TOML: {error}") from None
    try:
        return Settings(**data)
    except ValidationError as error:
        raise ConfigError(_format_errors(origin, error)) from None


def escalation_levels(settings: Settings) -> tuple[EscalationLevel, ...]:
    """The engine's escalation levels (with the reminder level of ``updates.mode =
    'remind'``), or none when both are off."""
    remind: tuple[EscalationLevel, ...] = ()
    if settings.updates.enabled and settings.updates.mode == "remind":
        remind = (
            EscalationLevel(
                name="update_owed",
                trigger=Trigger.BREACHED,
                channels=tuple(settings.updates.remind_channels),
                clocks=frozenset({Clock.UPDATE}),
                labels={"severity": "warning", "team": "support"},
            ),
        )
    if not settings.escalation.enabled:
        return remind
    return remind + tuple(
        EscalationLevel(
            name=level.name,
            trigger=Trigger(level.when),
            channels=tuple(level.channels),
            clocks=frozenset(Clock(c) for c in level.clocks),
            labels={"severity": level.severity, "team": level.team},
        )
        for level in settings.escalation.levels
    )


def policy_set(settings: Settings) -> PolicySet:
    """The engine's view of the policies: rules in file order, 'default' as fallback."""
    calendars: dict[str, Calendar] = {"24x7": ContinuousCalendar()}
    calendars.update({name: c.build(name) for name, c in settings.calendars.items()})

    def build(name: str, policy: PolicySettings) -> Policy:
        return Policy(
            name=name,
            first_response_seconds=policy.first_response,
            resolution_seconds=policy.resolution,
            update_interval_seconds=policy.update_interval,
            at_risk_ratio=policy.at_risk_ratio,
            overdue_ratio=policy.overdue_ratio,
            calendar=calendars[policy.calendar],
            next_reply_seconds=policy.next_reply,
            pause={Clock(clock): frozenset(statuses) for clock, statuses in policy.pause.items()},
            reopen=Reopen(policy.reopen),
            max_pause_seconds=policy.max_pause,
        )

    def allowed(values: list[str] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(values)

    rules = tuple(
        PolicyRule(
            build(name, policy),
            priorities=allowed(policy.priorities),
            queues=allowed(policy.queues),
            organizations=allowed(policy.organizations),
            customers=allowed(policy.customers),
            match=None
            if not policy.match
            else {
                key: frozenset(value if isinstance(value, list) else [value])
                for key, value in policy.match.items()
            },
        )
        for name, policy in settings.policies.items()
        if name != "default"
    )
    return PolicySet(
        rules=rules,
        default=build("default", settings.policies["default"]),
        statuses=StatusMap(
            open=frozenset(settings.statuses.open),
            paused=frozenset(settings.statuses.paused),
            resolved=frozenset(settings.statuses.resolved),
        ),
        priorities=frozenset(settings.priorities),
    )
