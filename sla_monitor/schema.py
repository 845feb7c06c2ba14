"""The configuration's shape: pydantic models and their validators, nothing else.

Each section is checked up front (durations, DSNs, time zones, calendars, channels used but
not configured); ``sla_monitor.config`` loads the file and builds the engine's objects.
"""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sla_monitor.engine import Policy
from sla_monitor.engine.business_calendar import WEEKDAYS, BusinessCalendar, parse_hours
from sla_monitor.engine.owed_updates import QuietHours
from sla_monitor.engine.policy import (
    DEFAULT_OPEN_STATUSES,
    DEFAULT_PAUSED_STATUSES,
    DEFAULT_PRIORITIES,
    DEFAULT_RESOLVED_STATUSES,
)
from sla_monitor.sources.rt import (
    RT_CHANGED_TICKETS_QUERY,
    RT_EVENTS_QUERY,
    RT_OPEN_TICKETS_QUERY,
    RT_PRIORITIES,
    RT_STATUSES,
)
from sla_monitor.sources.sql.defaults import (
    CHANGED_TICKETS_QUERY,
    EVENTS_QUERY,
    OPEN_TICKETS_QUERY,
)
from sla_monitor.templates import TemplateProblem, UpdateTemplates

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
# No target, interval or backoff is longer; a larger value is a typo ("1000000w") that would
# overflow the engine's datetime arithmetic at the first ticket.
MAX_DURATION = 365 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"1h"``, ``"90m"``, ``"1h30m"``, ``"2d"``:
    finite, from zero to one year (365 days)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '1h' or '90m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        matches = list(_DURATION.finditer(text))
        if not text or "".join(m.group(0) for m in matches) != text:
            raise ValueError(f"expected a duration like '1h', '90m' or '1h30m', got {value!r}")
        seconds = sum(float(m.group(1)) * _UNIT_SECONDS[m.group(2)] for m in matches)
    else:
        raise ValueError(f"expected a duration like '1h' or '90m', got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration like '1h' or '90m', got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"expected a duration of at most one year (365d), got {value!r}")
    return seconds


def _optional_duration(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in {"off", "none", ""}):
        return None
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[float | None, BeforeValidator(_optional_duration)]


def dsn_problem(dsn: str) -> str | None:
    """Why asyncpg would fail to parse ``dsn`` (or read it wrongly), else None. The answer
    never quotes the DSN: a malformed one usually breaks inside its password.

    Mirrors asyncpg's parser: a ``postgresql://`` or ``postgres://`` URL whose authority is
    split at the first ``@`` and whose ports must be numbers. A ``/``, ``?`` or ``#`` left
    unescaped in the password ends the authority early, so the rest of the password becomes a
    port, a path or a fragment.
    """
    text = dsn.strip()
    if not text:
        return "the DSN is empty"
    try:
        parts = urlsplit(text)
        if parts.scheme not in {"postgresql", "postgres"} or not text.startswith(
            f"{parts.scheme}://"
        ):
            return (
                "expected a postgresql:// or postgres:// URL "
                "(key=value connection strings are not supported)"
            )
        if "#" in text:
            return "it contains '#'"
        if "@" in parts.path or "@" in parts.query:
            return "an '@' follows the host, so the password holds a '/' or '?'"
        auth, _, hosts = parts.netloc.rpartition("@")
        if "@" in auth:
            return "it contains more than one '@'"
        for host in hosts.split(",") if hosts else ():
            port = host.rpartition("]")[2] if host.startswith("[") else host
            if ":" in port:
                number = port.partition(":")[2]
                if not number.isdigit() or not 0 < int(number) < 65536:
                    return "a port is not a number from 1 to 65535"
        if parts.query:
            parse_qs(parts.query, strict_parsing=True)
    except ValueError:
        return "it is not a well-formed URL"
    return None


def _check_dsn(field: str, dsn: SecretStr | None) -> SecretStr | None:
    if dsn is not None and (problem := dsn_problem(dsn.get_secret_value())):
        raise ValueError(
            f"{field} cannot be parsed: {problem}. It should look like "
            "postgresql://user:password@host:5432/database; percent-encode special characters "
            "in the password (/ as %2F, # as %23, ? as %3F, @ as %40, % as %25)"
        )
    return dsn


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DaemonSettings(_Section):
    poll_interval: Duration = 15.0
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=9464, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout: Duration = 5.0
    # Distinct queue label values in the metrics; further queues are exported as "other".
    max_queues: int = Field(default=100, ge=1)


class HttpSettings(_Section):
    """The HTTP API under /api/ and the board at / (/metrics, /healthz and /readyz are never
    behind the token).

    With ``token`` (or ``token_file``, read once at load), /api/ requires
    ``Authorization: Bearer <token>`` and the board the same or its cookie;
    ``show_subjects = false`` leaves ticket subjects out of every API response and the board.

    ``public_url``: the address users reach the board at (behind a proxy, say), for links the
    daemon sends out (a first start's backlog summary); kept with a trailing slash."""

    token: SecretStr | None = None
    token_file: Path | None = None
    show_subjects: bool = True
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            parts = urlsplit(url.strip())
            _ = parts.port  # raises on a port that is not a number from 0 to 65535
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme not in {"http", "https"}
            or not parts.hostname
            or parts.username is not None
            or parts.query
            or parts.fragment
        ):
            # Sent to every channel: no credentials, and paths are appended to it.
            raise ValueError(
                "expected an absolute http:// or https:// URL without credentials, query or "
                "fragment, such as https://sla.example.com/"
            )
        return parts.geturl() if parts.path.endswith("/") else f"{parts.geturl()}/"

    @model_validator(mode="after")
    def _read_token_file(self) -> HttpSettings:
        if self.token is None and self.token_file is not None:
            try:
                self.token = SecretStr(self.token_file.read_text().strip())
            except OSError as error:
                raise ValueError(
                    f"cannot read token_file {self.token_file}: {error.strerror}"
                ) from None
        if self.token is not None and not self.token.get_secret_value():
            raise ValueError("http.token is empty: set a token or leave it out")
        return self


class DatabaseSettings(_Section):
    """The daemon's own state store. Without a DSN an embedded PostgreSQL is started."""

    dsn: SecretStr | None = None
    dsn_file: Path | None = None
    schema_name: str = Field(default="sla_monitor", pattern=r"^[a-z_][a-z0-9_]*$")
    embedded_data_dir: Path = Path("var/pgdata")

    @field_validator("dsn")
    @classmethod
    def _dsn_parses(cls, dsn: SecretStr | None) -> SecretStr | None:
        return _check_dsn("the DSN", dsn)

    @model_validator(mode="after")
    def _read_dsn_file(self) -> DatabaseSettings:
        if self.dsn is None and self.dsn_file is not None:
            try:
                dsn = SecretStr(self.dsn_file.read_text().strip())
            except OSError as error:
                raise ValueError(
                    f"cannot read dsn_file {self.dsn_file}: {error.strerror}"
                ) from None
            self.dsn = _check_dsn(f"the DSN in dsn_file {self.dsn_file}", dsn)
        return self


class SourceSettings(_Section):
    """Where tickets come from. The queries return the documented columns (see README)."""

    # sql: the queries below; rt: Request Tracker 5's tables (queries, statuses and priorities
    # default to RT's; see README "Monitoring Request Tracker").
    kind: Literal["sql", "rt"] = "sql"
    name: str = "helpdesk"
    rt_url: str | None = None  # e.g. http://rt.example.com (REST2 is at /REST/2.0/)
    rt_user: str = "sla-monitor"  # posts progress updates; its correspondence is recognised
    rt_password: SecretStr | None = None  # basic auth, or:
    rt_token: SecretStr | None = None  # an RT auth token (Authorization: token ...)
    dsn: SecretStr | None = None  # defaults to the state store's database
    batch_size: int = Field(default=2000, ge=1)
    # Each poll re-reads changes this far behind the watermark, so a transaction that commits
    # late with an earlier timestamp is still seen. Re-reading is harmless: outcomes are
    # recorded once.
    watermark_lag: Duration = 30.0
    # Where a first start begins reading changes (tickets already open are read in full).
    backfill: Duration = 0.0
    # How often the tracked tickets are checked against the open set, so that a ticket
    # deleted or merged away (no change to read) stops being tracked and escalated.
    reconcile_interval: Duration = 600.0
    changed_tickets_query: str = CHANGED_TICKETS_QUERY
    open_tickets_query: str = OPEN_TICKETS_QUERY
    events_query: str = EVENTS_QUERY

    @field_validator("dsn")
    @classmethod
    def _dsn_parses(cls, dsn: SecretStr | None) -> SecretStr | None:
        return _check_dsn("the DSN", dsn)


class StatusSettings(_Section):
    # The engine's defaults, in the engine's order.
    open: list[str] = list(DEFAULT_OPEN_STATUSES)
    paused: list[str] = list(DEFAULT_PAUSED_STATUSES)
    resolved: list[str] = list(DEFAULT_RESOLVED_STATUSES)

    @model_validator(mode="after")
    def _disjoint(self) -> StatusSettings:
        seen: dict[str, str] = {}
        for category in ("open", "paused", "resolved"):
            for status in getattr(self, category):
                if status in seen:
                    raise ValueError(
                        f"status {status!r} is listed in both {seen[status]!r} and {category!r}"
                    )
                seen[status] = category
        return self


_POLICY = Policy()  # the engine's default targets and ratios, which a policy table overrides


def _kind(value: Any) -> str:
    """What a TOML value is, in the file's words."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list inside the list"
    return f"a {type(value).__name__}"


ClockName = Literal["first_response", "resolution", "update", "next_reply"]


class PolicySettings(_Section):
    """One contract: its targets and calendar, and the tickets it applies to. A ticket must meet
    every criterion set: its priority, queue, organization and customer each among those
    listed, and each ``match`` attribute equal to the value given (or one of a list of them:
    strings, numbers or booleans; true never equals 1). Without criteria it matches every
    ticket."""

    priorities: list[str] | None = None
    queues: list[str] | None = None
    organizations: list[str] | None = Field(default=None, min_length=1)
    customers: list[str] | None = Field(default=None, min_length=1)
    match: dict[str, Any] | None = None
    first_response: OptionalDuration = _POLICY.first_response_seconds
    resolution: OptionalDuration = _POLICY.resolution_seconds
    update_interval: OptionalDuration = _POLICY.update_interval_seconds
    next_reply: OptionalDuration = _POLICY.next_reply_seconds  # off by default
    at_risk_ratio: float = Field(default=_POLICY.at_risk_ratio, gt=0, lt=1, allow_inf_nan=False)
    overdue_ratio: float = Field(default=_POLICY.overdue_ratio, gt=1, allow_inf_nan=False)
    calendar: str = "24x7"
    # Per clock, the statuses that pause it; a clock not named is paused by [statuses] paused.
    pause: dict[ClockName, list[str]] = {}
    reopen: Literal["resume", "restart"] = _POLICY.reopen.value
    max_pause: OptionalDuration = _POLICY.max_pause_seconds  # longer in one pause: pause_limit
    # The update clock runs while paused: the same as pause = { update = [] }.
    update_while_paused: bool = False

    @model_validator(mode="after")
    def _update_while_paused(self) -> PolicySettings:
        if self.update_while_paused:
            if self.pause.get("update"):
                raise ValueError(
                    "update_while_paused = true contradicts pause.update "
                    f"{self.pause['update']}: set one of them"
                )
            self.pause = {**self.pause, "update": []}
        return self

    @field_validator("match")
    @classmethod
    def _match_values(cls, match: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, value in (match or {}).items():
            if not key.strip():
                raise ValueError("an attribute name cannot be empty")
            values = value if isinstance(value, list) else [value]
            if not values:
                raise ValueError(f"attribute {key!r}: an empty list matches nothing")
            for item in values:
                if not isinstance(item, str | int | float | bool):
                    raise ValueError(
                        f"attribute {key!r}: expected a string, number or boolean, or a list "
                        f"of them, got {_kind(item)}"
                    )
                if isinstance(item, float) and not math.isfinite(item):
                    raise ValueError(f"attribute {key!r}: {item} never equals a JSON value")
        return match

    @property
    def catch_all(self) -> bool:
        """True when the policy sets no criterion: it matches every ticket."""
        criteria = (self.priorities, self.queues, self.organizations, self.customers)
        return all(c is None for c in criteria) and not self.match


class EscalationLevelSettings(_Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    # pause_limit: the ticket is paused longer than its policy's max_pause (see README).
    when: Literal["at_risk", "breached", "overdue", "pause_limit"]
    channels: list[str] = Field(min_length=1)
    clocks: list[ClockName] = [
        "first_response",
        "resolution",
    ]
    severity: str = "warning"
    team: str = "support"


def _default_levels() -> list[EscalationLevelSettings]:
    return [
        EscalationLevelSettings(
            name="team", when="at_risk", channels=["alertmanager"], severity="warning"
        ),
        EscalationLevelSettings(
            name="oncall", when="breached", channels=["alertmanager"], severity="critical"
        ),
        EscalationLevelSettings(
            name="manager",
            when="overdue",
            channels=["alertmanager"],
            severity="critical",
            team="management",
        ),
    ]


class AlertmanagerSettings(_Section):
    url: str = "http://127.0.0.1:9093"
    resend_interval: Duration = 60.0  # alerts are re-sent so they never expire while active


class PagerDutySettings(_Section):
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key: SecretStr


class SlackSettings(_Section):
    webhook_url: SecretStr


class WebhookSettings(_Section):
    url: str
    secret: SecretStr  # signs every body with HMAC-SHA256


class ChannelSettings(_Section):
    alertmanager: AlertmanagerSettings | None = AlertmanagerSettings()
    pagerduty: PagerDutySettings | None = None
    slack: SlackSettings | None = None
    webhook: WebhookSettings | None = None


class EscalationSettings(_Section):
    enabled: bool = False
    # Where a person opens the ticket; {ticket_id} is replaced.
    ticket_url: str = "http://helpdesk.example/ticket/{ticket_id}"
    levels: list[EscalationLevelSettings] = Field(default_factory=_default_levels)
    channels: ChannelSettings = ChannelSettings()
    timeout: Duration = 10.0  # per delivery attempt
    retry_initial: Duration = 1.0
    retry_max: Duration = 300.0
    # A first start's escalations already due: one summary per level and channel, a page
    # each, or recorded only.
    backlog: Literal["summary", "page", "record"] = "summary"
    # Per channel: further triggers in the same minute go out as one digest per minute.
    max_pages_per_minute: int = Field(default=60, ge=1)

    @model_validator(mode="after")
    def _channels_configured(self) -> EscalationSettings:
        names = [level.name for level in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"levels: names must be unique, got {names}")
        for level in self.levels:
            for channel in level.channels:
                if channel not in ChannelSettings.model_fields:
                    raise ValueError(
                        f"levels.{level.name}.channels: unknown channel {channel!r} "
                        f"(known: {', '.join(ChannelSettings.model_fields)})"
                    )
                if getattr(self.channels, channel) is None:
                    raise ValueError(
                        f"levels.{level.name}.channels: channel {channel!r} is used but "
                        f"[escalation.channels.{channel}] is not configured"
                    )
        return self


class UpdateSettings(_Section):
    """Progress updates to customers whose ticket takes long."""

    enabled: bool = False
    # post: write to the customer through the helpdesk; remind: escalate to staff instead.
    mode: Literal["post", "remind"] = "post"
    min_ticket_age: Duration = 3600.0  # no updates before the first-response target
    quiet_hours: str | None = "22:00-08:00"  # in the customer's zone; None: any time
    default_timezone: str = "UTC"
    max_per_day: int = Field(default=3, ge=1)  # per ticket, over any 24 hours
    templates_dir: Path = Path("config/templates")
    default_language: str = "en"
    author: str = "sla-monitor"
    delivery: Literal["sql", "webhook", "rt"] = "sql"
    # $1 ticket id, $2 message body, $3 idempotency key, $4 author. It must not post twice for
    # the same key (e.g. a UNIQUE column with ON CONFLICT DO NOTHING).
    insert_query: str = (
        "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author, body, idempotency_key)\n"
        "VALUES ($1::text::bigint, 'automatic_update', $4, $2, $3)\n"
        "ON CONFLICT (idempotency_key) DO NOTHING"
    )
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    remind_channels: list[str] = ["alertmanager"]

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() not in {"", "off", "none"}:
            QuietHours.parse(value)
            return value
        return None

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _delivery_complete(self) -> UpdateSettings:
        if self.enabled and self.mode == "post":
            if self.delivery == "webhook" and (not self.webhook_url or not self.webhook_secret):
                raise ValueError("delivery 'webhook' needs webhook_url and webhook_secret")
            try:
                UpdateTemplates(self.templates_dir, self.default_language)
            except TemplateProblem as error:
                raise ValueError(f"templates: {error}") from None
        return self


class CalendarSettings(_Section):
    """Business hours per weekday ("09:00-12:00", several allowed, "00:00-24:00" for a whole
    day, [] or absent for none), in an IANA time zone, minus holidays."""

    timezone: str = "UTC"
    mon: list[str] = []
    tue: list[str] = []
    wed: list[str] = []
    thu: list[str] = []
    fri: list[str] = []
    sat: list[str] = []
    sun: list[str] = []
    holidays: list[date] = []
    country: str | None = None  # public holidays of this country (ISO code, e.g. "DE")
    subdivision: str | None = None  # e.g. "BY" for Bavaria

    def build(self, name: str) -> BusinessCalendar:
        weekly = {
            index: [parse_hours(text) for text in getattr(self, day)]
            for index, day in enumerate(WEEKDAYS)
        }
        return BusinessCalendar(
            name, self.timezone, weekly, self.holidays, self.country, self.subdivision
        )

    @model_validator(mode="after")
    def _buildable(self) -> CalendarSettings:
        for day in WEEKDAYS:
            for text in getattr(self, day):
                try:
                    parse_hours(text)
                except ValueError as error:
                    raise ValueError(f"{day}: {error}") from None
        self.build("check")  # zone, overlaps, an empty week, an unknown country
        return self


def _long_duration(value: Any) -> float:
    """parse_duration without its one-year bound (ten years at most)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        matches = list(_DURATION.finditer(text))
        if not text or "".join(m.group(0) for m in matches) != text:
            raise ValueError(f"expected a duration like '30d' or '400d', got {value!r}")
        seconds = sum(float(m.group(1)) * _UNIT_SECONDS[m.group(2)] for m in matches)
    else:
        raise ValueError(f"expected a duration like '30d' or '400d', got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 10 * 365 * 86400:
        raise ValueError(f"expected a duration from 1s to ten years, got {value!r}")
    return seconds


RetentionAge = Annotated[float, BeforeValidator(_long_duration)]

# The daily cap of customer updates counts those of the last 24 hours: kept at least twice that.
MIN_UPDATE_RETENTION = 2 * 86400.0


_RETENTION_AGES = (
    "delivered_outbox",
    "breaches",
    "customer_updates",
    "resolved_escalations",
    "ledger",
)


class RetentionSettings(_Section):
    """How long the daemon's own rows are kept; a background task deletes older ones."""

    enabled: bool = True
    delivered_outbox: RetentionAge = 30 * 86400.0  # after delivery
    breaches: RetentionAge = 400 * 86400.0  # breaches and completions, after they happened
    customer_updates: RetentionAge = 30 * 86400.0  # after they were owed
    resolved_escalations: RetentionAge = 30 * 86400.0  # after resolution
    ledger: RetentionAge = 400 * 86400.0  # ledger entries, after their instant
    interval: Duration = 3600.0  # between purges
    batch_size: int = Field(default=1000, ge=1, le=100_000)  # rows per DELETE
    pause: Duration = 0.1  # between batches: short transactions, others go first

    @field_validator("customer_updates")
    @classmethod
    def _daily_cap_window(cls, value: float) -> float:
        if value < MIN_UPDATE_RETENTION:
            raise ValueError(
                "at least 2d: the daily cap of updates reads the last 24 hours, got "
                f"{value / 3600:g}h"
            )
        return value


class ChurnSettings(_Section):
    """When a customer or organization is at risk of churning (sla_monitor.report): in the
    ``window``, at least ``min_breaches`` breached clocks, or a compliance below
    ``min_compliance``, or one completion that took longer than ``max_wait``."""

    window: Duration = 90 * 86400.0
    min_breaches: int = Field(default=3, ge=1)
    min_compliance: float = Field(default=0.8, ge=0.0, le=1.0)
    max_wait: Duration = 48 * 3600.0
    # How often the daemon recounts the sla_monitor_customers_at_risk gauge.
    interval: Duration = 300.0
    # SQL run on the helpdesk by `sla-monitor report`: the ids (as the source's customer
    # column gives them) of the customers who left in [$1, $2), the report's period, one a row
    # in the first column. When set, the report shows the period's churn rate.
    churned_customers_query: str | None = None


class Settings(BaseSettings):
    """The whole configuration as one typed object."""

    model_config = SettingsConfigDict(
        env_prefix="SLA_MONITOR_", env_nested_delimiter="__", extra="forbid"
    )

    daemon: DaemonSettings = DaemonSettings()
    http: HttpSettings = HttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    source: SourceSettings = SourceSettings()
    statuses: StatusSettings = StatusSettings()
    priorities: list[str] = list(DEFAULT_PRIORITIES)
    calendars: dict[str, CalendarSettings] = {}
    policies: dict[str, PolicySettings] = {"default": PolicySettings()}
    escalation: EscalationSettings = EscalationSettings()
    updates: UpdateSettings = UpdateSettings()
    retention: RetentionSettings = RetentionSettings()
    churn: ChurnSettings = ChurnSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment wins over them.
        return (env_settings, init_settings)

    @field_validator("policies")
    @classmethod
    def _policies_are_sound(cls, policies: dict[str, PolicySettings]) -> dict[str, PolicySettings]:
        if "default" not in policies:
            raise ValueError("a policy named 'default' is required (it applies when none matches)")
        return policies

    @model_validator(mode="after")
    def _policy_calendars_known(self) -> Settings:
        known = ["24x7", *self.calendars]
        for name, policy in self.policies.items():
            if policy.calendar not in known:
                raise ValueError(
                    f"policies.{name}.calendar: unknown calendar {policy.calendar!r} "
                    f"(known: {', '.join(known)})"
                )
        return self

    @model_validator(mode="after")
    def _request_tracker_defaults(self) -> Settings:
        if self.source.kind != "rt":
            if self.updates.delivery == "rt":
                raise ValueError("updates.delivery: 'rt' needs source.kind = 'rt'")
            return self
        defaults = {
            "changed_tickets_query": RT_CHANGED_TICKETS_QUERY,
            "open_tickets_query": RT_OPEN_TICKETS_QUERY,
            "events_query": RT_EVENTS_QUERY,
        }
        for field, query in defaults.items():
            if field not in self.source.model_fields_set:
                setattr(self.source, field, query)
        if "statuses" not in self.model_fields_set:
            self.statuses = StatusSettings(**RT_STATUSES)
        if "priorities" not in self.model_fields_set:
            self.priorities = list(RT_PRIORITIES)
        if "delivery" not in self.updates.model_fields_set:
            self.updates.delivery = "rt"
        if self.source.rt_url and "ticket_url" not in self.escalation.model_fields_set:
            # Links on the board and in pages open the ticket in RT itself.
            base = self.source.rt_url.rstrip("/")
            self.escalation.ticket_url = f"{base}/Ticket/Display.html?id={{ticket_id}}"
        if self.updates.enabled and self.updates.delivery == "rt":
            if not self.source.rt_url:
                raise ValueError("source.rt_url is needed to post updates through RT")
            if self.source.rt_password is None and self.source.rt_token is None:
                raise ValueError("source.rt_password or source.rt_token is needed for RT")
        return self

    @model_validator(mode="after")
    def _remind_channels_configured(self) -> Settings:
        if self.updates.enabled and self.updates.mode == "remind":
            for channel in self.updates.remind_channels:
                if getattr(self.escalation.channels, channel, None) is None:
                    raise ValueError(
                        f"updates.remind_channels: channel {channel!r} needs "
                        f"[escalation.channels.{channel}]"
                    )
        return self

    @model_validator(mode="after")
    def _policies_reachable(self) -> Settings:
        # Rules are tried in file order; after one without criteria, no other is ever tried.
        catch_all: str | None = None
        for name, policy in self.policies.items():
            if name == "default":
                continue
            if catch_all is not None:
                raise ValueError(
                    f"policies.{name}: can never match: shadowed by policies.{catch_all}, "
                    "which has no criteria (it matches every ticket; give it some, or move it "
                    "last, or make it the default)"
                )
            if policy.catch_all:
                catch_all = name
        return self

    @model_validator(mode="after")
    def _policy_pause_statuses_known(self) -> Settings:
        known = [*self.statuses.open, *self.statuses.paused, *self.statuses.resolved]
        for name, policy in self.policies.items():
            for clock, statuses in policy.pause.items():
                for status in statuses:
                    if status not in known:
                        raise ValueError(
                            f"policies.{name}.pause.{clock}: {status!r} is not a configured "
                            f"status (known: {', '.join(known)})"
                        )
        return self

    @model_validator(mode="after")
    def _policy_priorities_known(self) -> Settings:
        for name, policy in self.policies.items():
            for priority in policy.priorities or ():
                if priority not in self.priorities:
                    raise ValueError(
                        f"policies.{name}.priorities: {priority!r} is not one of the "
                        f"configured priorities {self.priorities}"
                    )
        return self

    @model_validator(mode="after")
    def _retention_outlives_targets(self) -> Settings:
        # A row purged while its clock may still run would be recorded (and counted) again.
        targets = {
            f"policies.{name}.{field}": value
            for name, policy in self.policies.items()
            for field in ("first_response", "resolution", "update_interval", "next_reply")
            if (value := getattr(policy, field)) is not None
        }
        if not targets or not self.retention.enabled:
            return self
        longest = max(targets, key=lambda field: targets[field])
        for field in RetentionSettings.model_fields:
            age = getattr(self.retention, field)
            if field in _RETENTION_AGES and age < targets[longest]:
                raise ValueError(
                    f"retention.{field}: {age / 86400:g}d is shorter than {longest} "
                    f"({targets[longest] / 86400:g}d), the longest target"
                )
        return self
