"""The live board at ``GET /``: the tickets breached and at risk, soonest deadline first, as
one server-rendered HTML page (sla_monitor/board.html, Jinja2 with autoescape: a subject full
of markup is text). It works without JavaScript; a few lines of inline script tick the
countdowns every second, and the page reloads itself every ``REFRESH_SECONDS``.

Read from the tracker's listing index like /api/v1/tickets: nothing is evaluated. The
handlers, the token cookie and the headers (a per-response CSP nonce) live in sla_monitor/http.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files

from jinja2 import Environment, StrictUndefined

from sla_monitor import __version__
from sla_monitor.daemon import Daemon
from sla_monitor.tracker import deadline_at

REFRESH_SECONDS = 30
BOARD_LIMIT = 200  # rows shown; the rest is counted, not listed
BOARD_STATES = frozenset({"breached", "at_risk"})

_ENVIRONMENT = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
_TEMPLATE = _ENVIRONMENT.from_string(
    files("sla_monitor").joinpath("board.html").read_text(encoding="utf-8")
)


@dataclass(frozen=True, slots=True)
class Row:
    ticket_id: str
    subject: str | None  # None: subjects are not shown
    policy: str
    queue: str
    priority: str
    clock: str
    state: str
    remaining: int | None  # whole seconds to the deadline at rendering; negative: over by
    url: str


def countdown(remaining: int | None) -> str:
    """ "due in 1h 05m 03s" / "over by 12m 00s" (the page's script says it the same way)."""
    if remaining is None:
        return "no deadline"
    seconds = abs(remaining)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours}h {minutes:02d}m {seconds:02d}s" if hours else f"{minutes}m {seconds:02d}s"
    return f"over by {text}" if remaining < 0 else f"due in {text}"


def board_rows(
    daemon: Daemon,
    now: datetime,
    show_subjects: bool,
    queue: str | None = None,
    priority: str | None = None,
) -> tuple[list[Row], bool]:
    """The breached and at-risk tickets matching the filters, soonest deadline first, at most
    BOARD_LIMIT; True when there are more."""
    tracker = daemon.tracker
    ticket_url = daemon.judge.escalations.ticket_url
    listed = tracker.listing(
        states=BOARD_STATES, queue=queue, priority=priority, limit=BOARD_LIMIT + 1
    )
    rows = []
    for item in listed[:BOARD_LIMIT]:
        ticket = tracker.ticket(item.ticket_id)
        soonest = deadline_at(item.deadline)
        # The clock the ticket is listed by: the one with the soonest deadline.
        clock, state, _ = next((c for c in item.clocks if c[2] == soonest), item.clocks[0])
        ticket_queue = "" if ticket is None else ticket.queue
        policy = (
            "?"
            if ticket is None
            else tracker.policies.policy_for(
                item.priority,
                ticket.queue,
                ticket.customer,
                ticket.organization,
                ticket.attributes,
            ).name
        )
        rows.append(
            Row(
                ticket_id=item.ticket_id,
                subject=item.subject if show_subjects else None,
                policy=policy,
                queue=ticket_queue,
                priority=item.priority,
                clock=clock,
                state=state,
                remaining=None if soonest is None else int((soonest - now).total_seconds()),
                url=ticket_url.replace("{ticket_id}", item.ticket_id),
            )
        )
    return rows, len(listed) > BOARD_LIMIT


def render_board(
    daemon: Daemon,
    nonce: str,
    show_subjects: bool,
    queue: str | None = None,
    priority: str | None = None,
) -> str:
    """The board's HTML; ``nonce`` goes on its inline style and script (the CSP allows only
    those)."""
    now = daemon.clock()
    rows, more = board_rows(daemon, now, show_subjects, queue, priority)
    queues = sorted({key[3] for key in daemon.tracker.counts})
    return _TEMPLATE.render(
        rows=rows,
        more=more,
        limit=BOARD_LIMIT,
        now=now.strftime("%Y-%m-%d %H:%M:%S %Z"),
        queue=queue or "",
        priority=priority or "",
        queues=queues,
        priorities=sorted(daemon.tracker.policies.priorities),
        show_subjects=show_subjects,
        refresh=REFRESH_SECONDS,
        nonce=nonce,
        version=__version__,
        countdown=countdown,
    )


def render_unauthorized(nonce: str) -> str:
    """The 401 page: a form that asks for the token (the board then keeps it in a cookie)."""
    return _ENVIRONMENT.from_string(_UNAUTHORIZED).render(nonce=nonce, version=__version__)


_UNAUTHORIZED = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sla-monitor: token needed</title>
<style nonce="{{ nonce }}">body{font:16px system-ui,sans-serif;margin:2em auto;max-width:30em;
padding:0 1em}input{font:inherit;max-width:100%}</style></head>
<body><h1>This board needs a token</h1>
<form method="get" action="/"><label>Token <input type="password" name="token"
autocomplete="current-password" required></label> <button>Open</button></form>
<p><small>sla-monitor {{ version }}</small></p></body></html>
"""
