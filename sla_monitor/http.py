"""The HTTP server: the live board at / (sla_monitor/board.py), /metrics for Prometheus,
/healthz (alive), /readyz (polling works), and the read-only JSON API under /api/v1/ (the
tracked tickets, one ticket's explanation, its OpenAPI document).

The board is guarded by the same token: ``Authorization: Bearer`` or, for a browser, the token
once as ``?token=``, which is swapped for an HttpOnly, SameSite=Strict cookie (holding an HMAC
of the token, not the token) by a redirect that drops it from the URL. Its pages are never
cached and allow only their own inline style and script (a nonce per response).

The API shows ticket subjects, so it is guarded: with ``[http] token`` every /api/ request
needs ``Authorization: Bearer <token>`` (compared in constant time; a 401 says nothing about
what was asked for), its responses are never cached and forbid every active content
(``Content-Security-Policy: default-src 'none'``), and ``show_subjects = false`` leaves
subjects out. Everything it answers is JSON (application/json), never HTML.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sla_monitor import __version__
from sla_monitor.board import render_board, render_unauthorized
from sla_monitor.daemon import Daemon
from sla_monitor.engine import Clock, ClockState, Ticket
from sla_monitor.engine.clocks import TicketError
from sla_monitor.engine.explain import OFF_HOURS_SHOWN, explain_ticket, explanation_json, so_far
from sla_monitor.engine.ledger import LedgerEntry, LedgerKind
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.schema import HttpSettings
from sla_monitor.sources import BadRow, SourceError
from sla_monitor.tracker import NO_DEADLINE, deadline_at

BOARD_COOKIE = "sla_monitor_board"
# The states a listed clock can be in: a stopped (met) clock is no longer open work.
LISTED_STATES = tuple(s.value for s in ClockState if s is not ClockState.MET)
CLOCKS = tuple(c.value for c in Clock)
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
LEDGER_TIMEOUT = 5.0  # seconds a ticket's explanation waits for its ledger, then goes without
_PARAMETERS = frozenset({"state", "clock", "queue", "priority", "sort", "limit", "cursor"})
_API_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadParameter(Exception):
    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.detail = detail


def _error(status: int, error: str, detail: str, **extra: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail, **extra}, status=status)


def make_app(
    daemon: Daemon,
    http: HttpSettings | None = None,
    at_risk: Callable[[], dict[str, Any] | None] | None = None,
) -> web.Application:
    """``at_risk``: the churn watch's last count (sla_monitor.store.report.ChurnWatch.latest),
    None before the first."""
    http = http or HttpSettings()
    token = None if http.token is None else http.token.get_secret_value().encode()
    show_subjects = http.show_subjects

    # The board's cookie holds a MAC of the token: a leaked cookie does not reveal the token
    # (which also opens the API), and changing the token invalidates every cookie.
    cookie = None if token is None else hmac.new(token, b"board", hashlib.sha256).hexdigest()

    async def board(request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        if token is not None and cookie is not None:
            given = request.query.get("token")
            if given is not None:
                if not hmac.compare_digest(given.encode(), token):
                    return _board_response(render_unauthorized(nonce), nonce, 401)
                rest = [(k, v) for k, v in request.query.items() if k != "token"]
                response = _board_response("", nonce, 303)
                response.headers["Location"] = str(request.rel_url.with_query(rest))
                response.set_cookie(
                    BOARD_COOKIE,
                    cookie,
                    httponly=True,
                    samesite="Strict",
                    path="/",
                    secure=request.secure,
                )
                return response
            kept = request.cookies.get(BOARD_COOKIE, "")
            if not (
                _authorized(request, token) or hmac.compare_digest(kept.encode(), cookie.encode())
            ):
                response = _board_response(render_unauthorized(nonce), nonce, 401)
                response.headers["WWW-Authenticate"] = 'Bearer realm="sla-monitor"'
                return response
        await daemon.tracker.prepare_listing()
        page = render_board(
            daemon,
            nonce,
            show_subjects,
            queue=request.query.get("queue") or None,
            priority=request.query.get("priority") or None,
        )
        return _board_response(page, nonce)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(daemon.metrics.registry)
        response = web.Response(body=body)
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        # Ready means polling works; a failing channel is detail (it has its own alerts), so
        # a dead webhook never takes the daemon out of a load balancer or restarts it.
        # A standby is ready too (it polls and its tracker is true: the board and the API
        # answer from it); "role" tells which replica leads.
        channels = daemon.metrics.channel_health
        role = daemon.role
        if daemon.ready:
            return web.json_response(
                {
                    "status": "ready",
                    "role": role,
                    "tracked": len(daemon.tracker),
                    "channels": channels,
                }
            )
        return web.json_response(
            {
                "status": "not ready",
                "role": role,
                "synced": daemon.synced,
                "error": daemon.last_error,
                "channels": channels,
            },
            status=503,
        )

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        try:
            if token is not None and not _authorized(request, token):
                response: web.StreamResponse = _error(
                    401, "unauthorized", "this API needs Authorization: Bearer <token>"
                )
                response.headers["WWW-Authenticate"] = 'Bearer realm="sla-monitor"'
            else:
                response = await handler(request)
        except web.HTTPException as exception:  # aiohttp's own 404/405: JSON too
            response = _error(exception.status, "http_error", exception.reason)
        response.headers.update(_API_HEADERS)
        return response

    async def tickets(request: web.Request) -> web.Response:
        try:
            query = _listing_query(request)
        except BadParameter as error:
            return _error(400, "bad_parameter", error.detail, parameter=error.parameter)
        limit = query.pop("limit")
        await daemon.tracker.prepare_listing()
        listed = daemon.tracker.listing(**query, limit=limit + 1)
        more = len(listed) > limit
        items = []
        for item in listed[:limit]:
            ticket = daemon.tracker.ticket(item.ticket_id)
            entry: dict[str, Any] = {
                "ticket_id": item.ticket_id,
                "priority": item.priority,
                "queue": None if ticket is None else ticket.queue,
                "status": None if ticket is None else ticket.status,
                "deadline": _iso(deadline_at(item.deadline)),
                "clocks": [
                    {"clock": clock, "state": state, "deadline": _iso(deadline)}
                    for clock, state, deadline in item.clocks
                ],
            }
            if show_subjects:
                entry["subject"] = item.subject
            items.append(entry)
        last = listed[limit - 1] if more else None
        return web.json_response(
            {
                "tickets": items,
                "next_cursor": None if last is None else _cursor(last.deadline, last.ticket_id),
            }
        )

    async def ticket(request: web.Request) -> web.Response:
        if request.query:
            return _unknown_parameter(request)
        ticket_id = request.match_info["ticket_id"]
        found: Ticket | BadRow | None = daemon.tracker.ticket(ticket_id)
        if found is None:  # resolved, or not read yet: one query, as `explain` makes
            try:
                found = await asyncio.wait_for(daemon.source.ticket(ticket_id), LEDGER_TIMEOUT)
            except (DatabaseUnavailable, SourceError, TimeoutError):
                return _error(503, "source_unavailable", "the helpdesk cannot be read now")
        if found is None:
            return _error(404, "not_found", "the helpdesk has no such ticket")
        if isinstance(found, BadRow):
            return _error(409, "cannot_judge", f"{found.reason}: {found.detail}")
        try:
            explanation = explain_ticket(found, daemon.tracker.policies, daemon.clock())
        except TicketError as error:  # e.g. after a reload that dropped its priority
            return _error(409, "cannot_judge", str(error))
        try:  # the ledger so far, as recorded: one query
            recorded = await asyncio.wait_for(daemon.store.ledger(ticket_id), LEDGER_TIMEOUT)
            ledger: list[LedgerEntry] | None = so_far(recorded, explanation)
        except (DatabaseUnavailable, TimeoutError):
            ledger = None  # the database is away or busy: the explanation stands without it
        return web.json_response(
            explanation_json(explanation, show_subject=show_subjects, ledger=ledger)
        )

    async def customers_at_risk(request: web.Request) -> web.Response:
        if request.query:
            return _unknown_parameter(request)
        latest = None if at_risk is None else at_risk()
        if latest is None:
            return _error(503, "not_counted", "the customers at risk have not been counted yet")
        return web.json_response(latest)

    async def openapi(request: web.Request) -> web.Response:
        if request.query:
            return _unknown_parameter(request)
        return web.json_response(openapi_document(show_subjects))

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", board)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/tickets", tickets)
    app.router.add_get("/api/v1/tickets/{ticket_id}", ticket)
    app.router.add_get("/api/v1/customers/at-risk", customers_at_risk)
    app.router.add_get("/api/v1/openapi.json", openapi)
    return app


def _board_response(text: str, nonce: str, status: int = 200) -> web.Response:
    """An HTML response of the board: never cached, only its own inline blocks may run."""
    response = web.Response(text=text, status=status, content_type="text/html")
    response.headers.update(
        {
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}';"
                " img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
    )
    return response


def _unknown_parameter(request: web.Request) -> web.Response:
    name = next(iter(request.query))
    return _error(400, "bad_parameter", f"unknown parameter {name!r}", parameter=name)


def _authorized(request: web.Request, token: bytes) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest takes as long for any wrong token of a given length: no timing oracle
    # on its content (its length is no secret worth the trouble).
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


def _listing_query(request: web.Request) -> dict[str, Any]:
    """The listing's filters from the query string; BadParameter names the first bad one."""
    for name in request.query:
        if name not in _PARAMETERS:
            raise BadParameter(name, f"unknown parameter {name!r}")
        if len(request.query.getall(name)) > 1:
            raise BadParameter(name, f"{name!r} is given more than once")
    get = request.query.get
    states = _choices("state", get("state", ""), LISTED_STATES)
    clocks = _choices("clock", get("clock", ""), CLOCKS)
    if get("sort", "deadline") not in ("", "deadline"):
        raise BadParameter("sort", "sort can only be 'deadline'")
    limit_text = get("limit", "") or str(DEFAULT_LIMIT)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise BadParameter("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    cursor = get("cursor", "")
    return {
        "states": states,
        "clocks": clocks,
        "queue": get("queue") or None,
        "priority": get("priority") or None,
        "after": _after(cursor) if cursor else None,
        "limit": int(limit_text),
    }


def _choices(name: str, text: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
    if not text:
        return None
    chosen = frozenset(part.strip() for part in text.split(","))
    unknown = sorted(chosen - set(allowed))
    if unknown:
        raise BadParameter(name, f"{name} {unknown[0]!r} is not one of {', '.join(allowed)}")
    return chosen


def _cursor(deadline: int, ticket_id: str) -> str:
    """The position after a listed ticket, opaque to clients."""
    return base64.urlsafe_b64encode(json.dumps([deadline, ticket_id]).encode()).decode()


def _after(cursor: str) -> tuple[int, str]:
    try:
        deadline, ticket_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadParameter("cursor", "cursor is not one this API returned") from None
    if (
        not isinstance(deadline, int)
        or isinstance(deadline, bool)
        or not isinstance(ticket_id, str)
        or not -(2**63) <= deadline <= NO_DEADLINE
    ):
        raise BadParameter("cursor", "cursor is not one this API returned")
    return deadline, ticket_id


def _iso(moment: Any) -> str | None:
    return None if moment is None else str(moment.isoformat())


def openapi_document(show_subjects: bool = True) -> dict[str, Any]:
    """The API's OpenAPI 3.1 document (schemas are JSON Schema 2020-12)."""
    instant = {"type": ["string", "null"], "format": "date-time"}
    error = {"$ref": "#/components/schemas/Error"}

    def responses(ok: str, *codes: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": ok}}},
            },
            "401": {
                "description": "a token is configured and the request lacks it",
                "content": {"application/json": {"schema": error}},
            },
        }
        for code in codes:
            out[str(code)] = {
                "description": {
                    400: "a bad parameter",
                    404: "the helpdesk has no such ticket",
                    409: "unjudgeable",
                    503: "the helpdesk cannot be read now",
                }[code],
                "content": {"application/json": {"schema": error}},
            }
        return out

    subject = {"subject": {"type": "string"}} if show_subjects else {}
    listed_clock = {
        "type": "object",
        "required": ["clock", "state", "deadline"],
        "additionalProperties": False,
        "properties": {
            "clock": {"enum": list(CLOCKS)},
            "state": {"enum": list(LISTED_STATES)},
            "deadline": instant,
        },
    }
    span = {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "start",
            "end",
            "counted",
            "category",
            "status",
            "reason",
            "business_seconds",
            "wall_seconds",
        ],
        "properties": {
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "counted": {"type": "boolean"},
            "category": {"enum": ["open", "paused", "resolved"]},
            "status": {"type": "string"},
            "reason": {"type": "string"},
            "business_seconds": {"type": "number"},
            "wall_seconds": {"type": "number"},
            # Counted spans only: with business_seconds they make up wall_seconds exactly.
            "outside_business_hours": {
                "description": "a counted span's first stretches outside business hours, in "
                "order, in the calendar's time zone",
                "type": "array",
                "maxItems": OFF_HOURS_SHOWN,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["start", "end", "seconds"],
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                        "seconds": {"type": "number"},
                    },
                },
            },
            "outside_business_hours_more": {
                "description": "how many more stretches outside business hours the span has",
                "type": "integer",
                "minimum": 0,
            },
            "outside_business_hours_more_seconds": {
                "description": "their total",
                "type": "number",
            },
        },
    }
    clock = {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "clock",
            "policy",
            "calendar",
            "state",
            "started_at",
            "stopped_at",
            "target_seconds",
            "elapsed_business_seconds",
            "wall_seconds",
            "remaining_seconds",
            "deadline",
            "at_risk_at",
            "breached_at",
            "derivation",
            "spans",
        ],
        "properties": {
            "clock": {"enum": list(CLOCKS)},
            "policy": {"type": "string"},
            "calendar": {"type": "string"},
            "state": {"enum": [s.value for s in ClockState]},
            "started_at": {"type": "string", "format": "date-time"},
            "stopped_at": instant,
            "target_seconds": {"type": "number"},
            "elapsed_business_seconds": {"type": "number"},
            "wall_seconds": {"type": "number"},
            "remaining_seconds": {"type": "number"},
            "deadline": instant,
            "at_risk_at": instant,
            "breached_at": instant,
            "derivation": {"type": "string"},
            "spans": {"type": "array", "items": {"$ref": "#/components/schemas/Span"}},
        },
    }
    explanation_required = [
        "ticket_id",
        "status",
        "category",
        "priority",
        "queue",
        "policy",
        "matched",
        "calendar",
        "evaluated_at",
        "paused_since",
        "pause_limit_at",
        "clocks",
        "ledger",
    ]
    explanation = {
        "type": "object",
        "additionalProperties": False,
        "required": [*explanation_required, *subject],
        "properties": {
            "ticket_id": {"type": "string"},
            **subject,
            "status": {"type": "string"},
            "category": {"enum": ["open", "paused", "resolved"]},
            "priority": {"type": "string"},
            "queue": {"type": "string"},
            "policy": {"type": "string"},
            "matched": {
                "description": "the fields the policy's rule matched on; null: the default",
                "type": ["object", "null"],
            },
            "calendar": {"type": "string"},
            "evaluated_at": {"type": "string", "format": "date-time"},
            "paused_since": instant,
            "pause_limit_at": instant,
            "clocks": {"type": "array", "items": {"$ref": "#/components/schemas/Clock"}},
            "ledger": {
                "description": "every transition of the ticket's clocks recorded so far, in "
                "the order they happened; null: the daemon's database could not be read",
                "type": ["array", "null"],
                "items": {"$ref": "#/components/schemas/LedgerEntry"},
            },
        },
    }
    ledger_entry = {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "at",
            "clock",
            "window_key",
            "kind",
            "policy",
            "previous_policy",
            "calendar",
            "priority",
            "elapsed_seconds",
        ],
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "clock": {"enum": list(CLOCKS)},
            "window_key": {
                "description": "which window of the clock: empty for the first, else the "
                "instant it opened",
                "type": "string",
            },
            "kind": {"enum": [kind.value for kind in LedgerKind]},
            "policy": {
                "description": "in force at `at` (policy_changed: the new one)",
                "type": "string",
            },
            "previous_policy": {
                "description": "policy_changed: the one before",
                "type": ["string", "null"],
            },
            "calendar": {"type": "string"},
            "priority": {"description": "the ticket's at `at`", "type": "string"},
            "elapsed_seconds": {
                "description": "business seconds the clock had counted by `at`",
                "type": "number",
            },
        },
    }
    summary = {
        "type": "object",
        "additionalProperties": False,
        "required": ["ticket_id", "priority", "queue", "status", "deadline", "clocks", *subject],
        "properties": {
            "ticket_id": {"type": "string"},
            **subject,
            "priority": {"type": "string"},
            "queue": {"type": ["string", "null"]},
            "status": {"type": ["string", "null"]},
            "deadline": instant,
            "clocks": {"type": "array", "items": listed_clock},
        },
    }

    def parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": schema,
        }

    return {
        "openapi": "3.1.0",
        "info": {"title": "sla-monitor", "version": __version__},
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/tickets": {
                "get": {
                    "summary": "open tickets with a matching clock, soonest deadline first",
                    "parameters": [
                        parameter(
                            "state",
                            f"comma-separated: {', '.join(LISTED_STATES)}",
                            {"type": "string"},
                        ),
                        parameter(
                            "clock", f"comma-separated: {', '.join(CLOCKS)}", {"type": "string"}
                        ),
                        parameter("queue", "the ticket's queue", {"type": "string"}),
                        parameter("priority", "the ticket's priority", {"type": "string"}),
                        parameter("sort", "only deadline", {"enum": ["deadline"]}),
                        parameter(
                            "limit",
                            f"page size (default {DEFAULT_LIMIT})",
                            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        ),
                        parameter("cursor", "next_cursor of the previous page", {"type": "string"}),
                    ],
                    "responses": responses("#/components/schemas/TicketList", 400),
                }
            },
            "/api/v1/tickets/{ticket_id}": {
                "get": {
                    "summary": "why a ticket's clocks stand where they do (open or "
                    "resolved: an untracked ticket is read from the helpdesk)",
                    "parameters": [
                        {
                            "name": "ticket_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": responses("#/components/schemas/Explanation", 400, 404, 409, 503),
                }
            },
            "/api/v1/customers/at-risk": {
                "get": {
                    "summary": "customers and organizations at risk of churning under [churn], "
                    "as the daemon last counted them (every [churn] interval)",
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/AtRisk"}
                                }
                            },
                        },
                        "400": {
                            "description": "a query parameter (it takes none)",
                            "content": {"application/json": {"schema": error}},
                        },
                        "503": {
                            "description": "not counted yet (just started, or the database "
                            "was away)",
                            "content": {"application/json": {"schema": error}},
                        },
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {
                        "200": {"description": "OK"},
                        "400": {
                            "description": "a query parameter (it takes none)",
                            "content": {"application/json": {"schema": error}},
                        },
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "additionalProperties": False,
                    "properties": {
                        "error": {"type": "string"},
                        "detail": {"type": "string"},
                        "parameter": {"type": "string"},
                    },
                },
                "TicketList": {
                    "type": "object",
                    "required": ["tickets", "next_cursor"],
                    "additionalProperties": False,
                    "properties": {
                        "tickets": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/TicketSummary"},
                        },
                        "next_cursor": {"type": ["string", "null"]},
                    },
                },
                "AtRisk": {
                    "type": "object",
                    "required": ["counted_at", "since", "counts", "at_risk"],
                    "additionalProperties": False,
                    "properties": {
                        "counted_at": {"type": "string", "format": "date-time"},
                        "since": {"type": "string", "format": "date-time"},
                        "counts": {
                            "type": "object",
                            "additionalProperties": {"type": "integer"},
                        },
                        "at_risk": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["kind", "name", "reasons"],
                                "additionalProperties": False,
                                "properties": {
                                    "kind": {"enum": ["customer", "organization"]},
                                    "name": {"type": "string"},
                                    "reasons": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["reason", "detail", "tickets"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "reason": {
                                                    "enum": ["breaches", "compliance", "max_wait"]
                                                },
                                                "detail": {"type": "string"},
                                                "tickets": {
                                                    "type": "array",
                                                    "items": {"type": "string"},
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
                "TicketSummary": summary,
                "Explanation": explanation,
                "Clock": clock,
                "Span": span,
                "LedgerEntry": ledger_entry,
            },
        },
    }


async def start_http(
    daemon: Daemon,
    host: str,
    port: int,
    http: HttpSettings | None = None,
    at_risk: Callable[[], dict[str, Any] | None] | None = None,
) -> web.AppRunner:
    runner = web.AppRunner(make_app(daemon, http, at_risk), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
