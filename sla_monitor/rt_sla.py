"""Request Tracker's SLA configuration as sla-monitor TOML (``sla-monitor import-rt-sla``).

RT's configuration files are Perl, so Perl reads them: ``read_rt_config`` runs ``perl`` on a
small script that ``do``es each file with a stub ``Set`` and prints ``%ServiceAgreements``,
``%ServiceBusinessHours`` and ``$Timezone`` as JSON (JSON::PP is part of Perl). The files are
code: they run with the rights of whoever imports them, as they do in RT.

``rt_sla_toml`` (pure) turns that into calendars and policies. The mapping, in short (README
"Monitoring Request Tracker" has it in full):
- each SLA level -> ``[policies.rt_<level>]`` with ``match = { sla = "<level>" }`` (RT stores
  the level, including its ``Default`` and ``QueueDefault`` choice, in the ticket's SLA field);
- ``Response`` -> ``first_response`` and ``next_reply`` (RT's Response is due again after every
  customer message); ``Resolve`` -> ``resolution``; ``KeepInLoop`` -> ``update_interval``; a
  deadline the level does not set is ``"off"``;
- ``BusinessHours`` (or ``Default``) in the level's ``Timezone`` (else ``$Timezone``) ->
  ``calendar``, when any of the level's deadlines counts business minutes; otherwise ``24x7``;
- every clock a level sets gets an explicit ``pause`` list: the deadline's
  ``IgnoreOnStatuses`` (RT pauses nothing else: stalled does not stop RT's deadlines);
- whatever has no exact equivalent becomes a TOML comment next to what it affects: nothing
  is dropped silently.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sla_monitor.engine.business_calendar import WEEKDAYS
from sla_monitor.sources.rt import RT_STATUSES

EX_UNAVAILABLE, EX_CONFIG = 69, 78

# Business::Hours' own week when a level needs business hours nobody defined.
_BUSINESS_HOURS_DEFAULT = {str(day): {"Start": "9:00", "End": "18:00"} for day in range(1, 6)}
_RT_STATUSES = [status for statuses in RT_STATUSES.values() for status in statuses]
_LEVEL_KEYS = {"Starts", "StartImmediately", "Response", "Resolve", "KeepInLoop"}
_LEVEL_KEYS |= {"OutOfHours", "BusinessHours", "Timezone"}
_DEADLINE_KEYS = {"BusinessMinutes", "RealMinutes", "IgnoreOnStatuses"}
_DEADLINE_KEYS |= {"ExcludeTimeOnIgnoredStatuses"}
# RT deadline -> the sla-monitor clocks it becomes (policy key, clock name).
_CLOCKS = {
    "Response": (("first_response", "first_response"), ("next_reply", "next_reply")),
    "Resolve": (("resolution", "resolution"),),
    "KeepInLoop": (("update_interval", "update"),),
}
_TIME = re.compile(r"^\s*(\d+)\D(\d+)\s*$")

# Perl: do each file with a stub Set (RT's prototype, so `Set(%Hash, ...)` passes the hash),
# then print what the SLA needs. Exit 3: a module is missing; exit 2: a file is bad.
_READER = r"""
use strict;
use warnings;
BEGIN { eval { require JSON::PP; 1 } or do { print STDERR $@; exit 3 } }
our (%ServiceAgreements, %ServiceBusinessHours, $Timezone);
sub Set(\[$@%]@) {
    my ($ref, @values) = @_;
    if (ref $ref eq 'HASH') { %$ref = @values }
    elsif (ref $ref eq 'ARRAY') { @$ref = @values }
    else { $$ref = $values[0] }
    return 1;
}
sub Plugin { return 1 }
for my $file (@ARGV) {
    local $@;
    local $!;
    my $result = do $file;
    if ($@) { print STDERR "$file: $@"; exit 2 }
    if (!defined $result && $!) { print STDERR "$file: $!\n"; exit 2 }
}
print JSON::PP->new->canonical->allow_unknown->allow_blessed->encode({
    ServiceAgreements => \%ServiceAgreements,
    ServiceBusinessHours => \%ServiceBusinessHours,
    Timezone => $Timezone,
});
"""


class RtConfigError(Exception):
    """The files cannot be read or hold no usable SLA configuration (exit 78)."""

    exit_code = EX_CONFIG


class PerlUnavailable(RtConfigError):
    """Perl (or its JSON::PP module) is not there to read RT's configuration (exit 69)."""

    exit_code = EX_UNAVAILABLE


def read_rt_config(paths: Sequence[Path], timeout: float = 30.0) -> dict[str, Any]:
    """``ServiceAgreements``, ``ServiceBusinessHours`` and ``Timezone`` as RT would set them
    from ``paths``, read in order (later files win, as in RT_SiteConfig.d)."""
    perl = shutil.which("perl")
    if perl is None:
        raise PerlUnavailable(
            "perl is not installed; it is needed to read RT's configuration (which is Perl): "
            "install it (Debian: apt-get install perl) or run the import where RT runs"
        )
    for path in paths:
        if not path.is_file():
            raise RtConfigError(f"{path}: not a readable file")
    try:
        done = subprocess.run(
            [perl, "-e", _READER, *(str(path.resolve()) for path in paths)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise RtConfigError(f"perl did not finish reading the files within {timeout:g} s") from None
    problem = done.stderr.strip()
    if done.returncode == 3:
        raise PerlUnavailable(f"perl cannot load JSON::PP (Debian: perl-modules): {problem}")
    if done.returncode != 0:
        raise RtConfigError(f"cannot read the RT configuration: {problem or done.returncode}")
    try:
        config: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise RtConfigError(f"perl printed no JSON: {error}") from None
    return config


@dataclass
class _Deadline:
    """One RT deadline (Response, Resolve, KeepInLoop) of a level."""

    business_minutes: float | None = None
    real_minutes: float | None = None
    ignore: list[str] = field(default_factory=list)
    exclude_ignored_time: bool = False
    notes: list[str] = field(default_factory=list)


def _minutes(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RtConfigError(f"{what}: expected a number of minutes, got {value!r}")
    try:
        minutes = float(value)
    except ValueError:
        raise RtConfigError(f"{what}: expected a number of minutes, got {value!r}") from None
    if not math.isfinite(minutes) or minutes < 0:
        raise RtConfigError(f"{what}: expected a number of minutes, got {value!r}")
    return minutes


def _deadline(value: Any, what: str) -> _Deadline:
    if isinstance(value, dict):
        deadline = _Deadline()
        if "BusinessMinutes" in value and value["BusinessMinutes"] is not None:
            deadline.business_minutes = _minutes(value["BusinessMinutes"], what)
        if "RealMinutes" in value and value["RealMinutes"] is not None:
            deadline.real_minutes = _minutes(value["RealMinutes"], what)
        ignore = value.get("IgnoreOnStatuses") or []
        if not isinstance(ignore, list) or not all(isinstance(s, str) for s in ignore):
            raise RtConfigError(f"{what}.IgnoreOnStatuses: expected a list of statuses")
        deadline.ignore = list(ignore)
        deadline.exclude_ignored_time = bool(value.get("ExcludeTimeOnIgnoredStatuses"))
        for key in sorted(set(value) - _DEADLINE_KEYS):
            deadline.notes.append(f"{key} = {json.dumps(value[key])} is not imported")
        return deadline
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return _Deadline(business_minutes=_minutes(value, what))  # a plain number: business
    raise RtConfigError(f"{what}: expected minutes or a hash of them, got {value!r}")


def _duration(minutes: float) -> str:
    seconds = round(minutes * 60)
    hours, rest = divmod(seconds, 3600)
    text = (f"{hours}h" if hours else "") + (f"{rest // 60}m" if rest // 60 else "")
    text += f"{rest % 60}s" if rest % 60 else ""
    return text or "0s"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "x"


def _quote(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_quote(v) for v in value) + "]"
    if isinstance(value, date):
        return value.isoformat()
    return json.dumps(value)  # a TOML basic string (non-ASCII escaped as \uXXXX)


def _comment(text: str) -> str:
    return "\n".join(
        f"# {line}"
        for line in textwrap.wrap(text, 94, break_long_words=False, break_on_hyphens=False)
    )


def _day_spans(spec: Any, what: str) -> list[tuple[int, int]]:
    """A Business::Hours day as spans in minutes from that day's midnight (an end at or before
    the start runs past midnight), breaks removed."""

    def span(part: Any) -> tuple[int, int] | None:
        if not isinstance(part, dict):
            return None
        start, end = (
            _TIME.match(str(part.get("Start") or "")),
            _TIME.match(str(part.get("End") or "")),
        )
        if start is None or end is None:
            return None  # Business::Hours ignores it as well: no hours that day
        first = int(start.group(1)) * 60 + int(start.group(2))
        last = int(end.group(1)) * 60 + int(end.group(2))
        if first >= 1440:
            raise RtConfigError(f"{what}: Start {part.get('Start')!r} is not a time of day")
        return first, last + 1440 if last <= first else last

    whole = span(spec)
    if whole is None:
        return []
    spans = [whole]
    for pause in (spec.get("Breaks") or []) if isinstance(spec, dict) else []:
        cut = span(pause)
        if cut is None:
            continue
        spans = [
            piece
            for start, end in spans
            for piece in ((start, min(end, cut[0])), (max(start, cut[1]), end))
            if piece[0] < piece[1]
        ]
    return spans


def _hours_text(start: int, end: int) -> str:
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def _week(hours: dict[str, Any], name: str) -> dict[str, list[str]]:
    """Business::Hours days (0 = Sunday) as sla-monitor weekdays; hours past midnight go to the
    next day, overlapping hours are merged."""
    minutes: dict[int, list[tuple[int, int]]] = {day: [] for day in range(7)}  # 0 = Monday
    for key, spec in hours.items():
        if key == "holidays":
            continue
        if not (key.isdigit() and int(key) <= 6):
            raise RtConfigError(f"ServiceBusinessHours.{name}: unknown day {key!r} (0-6)")
        monday_based = (int(key) + 6) % 7
        for start, end in _day_spans(spec, f"ServiceBusinessHours.{name}.{key}"):
            day = monday_based
            while start < end:
                minutes[day % 7].append((start, min(end, 1440)))
                start, end, day = 0, end - 1440, day + 1
                if end <= 0:
                    break
    week: dict[str, list[str]] = {}
    for day, spans in minutes.items():
        merged: list[tuple[int, int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        if merged:
            week[WEEKDAYS[day]] = [_hours_text(start, end) for start, end in merged]
    return week


def _holidays(
    hours: dict[str, Any], name: str, years: Iterable[int]
) -> tuple[list[date], list[str]]:
    """Business::Hours holidays ('YYYY-MM-DD', or 'MM-DD' every year) as dates; a yearly one
    is listed for each of ``years``."""
    found: set[date] = set()
    yearly: list[str] = []
    for text in hours.get("holidays") or []:
        match = re.fullmatch(r"(?:(\d{4})\D)?(\d\d)\D(\d\d)", str(text))
        if match is None:
            raise RtConfigError(f"ServiceBusinessHours.{name}.holidays: bad date {text!r}")
        year, month, day = match.groups()
        try:
            if year:
                found.add(date(int(year), int(month), int(day)))
            else:
                yearly.append(f"{month}-{day}")
                found.update(date(y, int(month), int(day)) for y in years)
        except ValueError:
            raise RtConfigError(
                f"ServiceBusinessHours.{name}.holidays: bad date {text!r}"
            ) from None
    return sorted(found), yearly


def rt_sla_toml(config: dict[str, Any], years: Sequence[int], origin: str = "") -> str:
    """The calendars and policies equivalent to RT's SLA configuration ``config`` (as
    ``read_rt_config`` returns it); yearly holidays are listed for ``years``."""
    agreements = config.get("ServiceAgreements") or {}
    all_hours = config.get("ServiceBusinessHours") or {}
    if not isinstance(agreements, dict) or not isinstance(all_hours, dict):
        raise RtConfigError("%ServiceAgreements and %ServiceBusinessHours must be hashes")
    levels = agreements.get("Levels") or {}
    if not isinstance(levels, dict) or not levels:
        raise RtConfigError("%ServiceAgreements has no Levels: there is nothing to import")
    global_zone = config.get("Timezone")
    out: list[str] = [
        _comment(
            "Request Tracker's SLA configuration, imported by `sla-monitor import-rt-sla`"
            + (f" from {origin}" if origin else "")
            + '. Use it with [source] kind = "rt". RT\'s deadlines map onto the clocks as '
            'README "Monitoring Request Tracker" explains; what has no exact equivalent is '
            "noted."
        ),
        "",
    ]
    if not global_zone:
        out += [
            "# $Timezone is not set in the files read: UTC is assumed where a level sets no",
            "# Timezone (RT itself would use its own $Timezone; check each calendar's zone).",
            "",
        ]
    zone = str(global_zone or "UTC")
    if default := agreements.get("Default"):
        out.append(
            _comment(
                f"Default level {json.dumps(default)}: RT stores it in each new ticket's SLA "
                "field, so its policy below matches."
            )
        )
    queue_defaults = agreements.get("QueueDefault") or {}
    for queue, choice in sorted(queue_defaults.items()):
        level = choice.get("Level") if isinstance(choice, dict) else choice
        text = f"QueueDefault {json.dumps(queue)}: level {json.dumps(level)}"
        text += " (stored in the ticket's SLA field by RT, so its policy matches)"
        if isinstance(choice, dict) and choice.get("Timezone"):
            text += (
                f"; its Timezone {json.dumps(choice['Timezone'])} is NOT imported (one "
                "calendar zone per level here)"
            )
        out.append(_comment(text))
    if agreements.get("AssumeOutsideActor"):
        out.append(
            _comment(
                "AssumeOutsideActor is NOT imported: only the requestors' correspondence is a "
                "customer message for sla-monitor's RT source."
            )
        )
    for key in sorted(set(agreements) - {"Levels", "Default", "QueueDefault"}):
        if key != "AssumeOutsideActor":
            out.append(_comment(f"%ServiceAgreements {key} is not imported."))
    if out[-1] != "":
        out.append("")

    # Which business hours each level counts in, and so which calendars are needed.
    policies: list[str] = []
    calendars: dict[tuple[str, str], str] = {}  # (hours name, zone) -> calendar name
    used_names: set[str] = set()
    for level_name in sorted(levels):
        level = levels[level_name]
        what = f"Levels.{level_name}"
        if not isinstance(level, dict):
            raise RtConfigError(f"{what}: expected a hash, got {level!r}")
        deadlines = {
            kind: _deadline(level[kind], f"{what}.{kind}")
            for kind in _CLOCKS
            if level.get(kind) is not None
        }
        business = any(d.business_minutes is not None for d in deadlines.values())
        real = any(d.real_minutes is not None for d in deadlines.values())
        notes: list[str] = []
        calendar = "24x7"
        level_zone = str(level.get("Timezone") or zone)
        if business:
            hours_name = str(level.get("BusinessHours") or "Default")
            key = (hours_name, level_zone)
            if key not in calendars:
                base = _slug(hours_name)
                taken = {c for (h, z), c in calendars.items() if h != hours_name or z != level_zone}
                name = base if base not in taken else f"{base}_{_slug(level_zone)}"
                calendars[key] = name
            calendar = calendars[key]
            if real:
                kinds = [k for k, d in deadlines.items() if d.real_minutes is not None]
                notes.append(
                    f"{'/'.join(kinds)}: real minutes in RT; a policy has one calendar, so "
                    f"they count here as business minutes of {calendar!r}."
                )
        elif level.get("BusinessHours") or level.get("Timezone"):
            notes.append(
                "BusinessHours/Timezone unused: every deadline of this level is in real minutes."
            )
        lines = [f"[policies.rt_{_slug(level_name)}]"]
        policy_name = _slug(level_name)
        if policy_name in used_names:
            raise RtConfigError(f"{what}: two levels make the same policy name rt_{policy_name}")
        used_names.add(policy_name)
        lines.append(f"match = {{ sla = {_quote(str(level_name))} }}")
        pause: dict[str, list[str]] = {}
        for kind, clocks in _CLOCKS.items():
            deadline = deadlines.get(kind)
            if deadline is None:
                for key, _ in clocks:
                    if key != "next_reply":  # off unless asked for
                        lines.append(f'{key} = "off"  # no {kind} in RT')
                continue
            minutes = (deadline.business_minutes or 0) + (deadline.real_minutes or 0)
            if deadline.business_minutes is not None and deadline.real_minutes is not None:
                notes.append(
                    f"{kind}: RT adds {deadline.real_minutes:g} real minutes after "
                    f"{deadline.business_minutes:g} business minutes; here all "
                    f"{minutes:g} are business minutes."
                )
            for key, clock in clocks:
                lines.append(f'{key} = "{_duration(minutes)}"  # {kind}')
                known = [s for s in deadline.ignore if s in _RT_STATUSES]
                pause[clock] = known
            unknown = [s for s in deadline.ignore if s not in _RT_STATUSES]
            if unknown:
                notes.append(
                    f"{kind}: IgnoreOnStatuses {unknown} are not statuses sla-monitor knows; "
                    "add them to [statuses] and to this pause list."
                )
            if deadline.ignore and not deadline.exclude_ignored_time:
                notes.append(
                    f"{kind}: without ExcludeTimeOnIgnoredStatuses RT goes on counting while "
                    f"the ticket is {'/'.join(deadline.ignore)} (it only hides the deadline); "
                    "sla-monitor pauses the clock."
                )
            notes += [f"{kind}: {note}" for note in deadline.notes]
        if "KeepInLoop" in deadlines:
            notes.append(
                "KeepInLoop: RT measures it from staff replies only; sla-monitor's update "
                "clock also runs from creation."
            )
        lines.append(f"calendar = {_quote(calendar)}")
        entries = ", ".join(f"{clock} = {_quote(statuses)}" for clock, statuses in pause.items())
        lines.append(f"pause = {{ {entries} }}")
        if level.get("StartImmediately") or level.get("Starts") is not None:
            notes.append(
                "Starts/StartImmediately set only RT's Starts date (RT's Due counts from "
                "creation, as sla-monitor does): not imported."
            )
        if level.get("OutOfHours"):
            notes.append(
                f"OutOfHours {json.dumps(level['OutOfHours'], sort_keys=True)} is NOT "
                "imported: sla-monitor gives no extra time to tickets created out of hours."
            )
        for key in sorted(set(level) - _LEVEL_KEYS):
            notes.append(f"{key} = {json.dumps(level[key])} is not imported.")
        policies += [_comment(note) for note in notes] + lines + [""]

    out += _calendars(all_hours, calendars, zone, years)
    out += policies
    out += [
        "# Tickets without an SLA level: RT sets no Due for them, so nothing is measured.",
        "[policies.default]",
        'first_response = "off"',
        'resolution = "off"',
        'update_interval = "off"',
    ]
    return "\n".join(out) + "\n"


def _calendars(
    all_hours: dict[str, Any],
    used: dict[tuple[str, str], str],
    zone: str,
    years: Sequence[int],
) -> list[str]:
    out: list[str] = []
    emitted = dict(used)
    for hours_name in sorted(all_hours):
        if not any(h == hours_name for h, _ in used):
            emitted[(hours_name, zone)] = _slug(hours_name)
    for (hours_name, calendar_zone), name in sorted(emitted.items(), key=lambda kv: kv[1]):
        hours = all_hours.get(hours_name)
        if hours is None:
            if hours_name != "Default":
                raise RtConfigError(
                    f"a level uses business hours {hours_name!r}, which "
                    "%ServiceBusinessHours does not define"
                )
            hours = _BUSINESS_HOURS_DEFAULT
            out.append("# RT's Default business hours are not set: Business::Hours' own week.")
        if not isinstance(hours, dict):
            raise RtConfigError(f"ServiceBusinessHours.{hours_name}: expected a hash")
        week = _week(hours, hours_name)
        if not week:
            raise RtConfigError(f"ServiceBusinessHours.{hours_name}: no business hours at all")
        holidays, yearly = _holidays(hours, hours_name, years)
        if not any(h == hours_name for h, _ in used):
            out.append(f"# Business hours {json.dumps(hours_name)}: no level uses them.")
        if yearly:
            out.append(
                _comment(
                    f"RT repeats the holidays {', '.join(yearly)} every year: listed for "
                    f"{years[0]}-{years[-1]}; extend the list in time."
                )
            )
        out.append(f"[calendars.{name}]  # RT business hours {json.dumps(hours_name)}")
        out.append(f"timezone = {_quote(calendar_zone)}")
        out += [f"{day} = {_quote(spans)}" for day, spans in week.items()]
        if holidays:
            out.append(f"holidays = {_quote(holidays)}")
        out.append("")
    return out
