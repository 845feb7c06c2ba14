"""The `sla-monitor` command: run, evaluate, explain, report, check-config, migrate, demo,
import-rt-sla."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from sla_monitor import __version__
from sla_monitor.config import EX_CONFIG, ConfigError, Settings, load_settings, policy_set
from sla_monitor.daemon import utcnow
from sla_monitor.engine import PolicySet, Ticket, TicketEvaluation, evaluate_ticket
from sla_monitor.engine.clocks import TicketError
from sla_monitor.errors import DatabaseRefused, DatabaseUnavailable
from sla_monitor.logs import configure_logging
from sla_monitor.sources import SourceError

EX_OK, EX_NOT_FOUND, EX_USAGE, EX_SOFTWARE, EX_UNAVAILABLE = 0, 1, 64, 70, 69

log = structlog.get_logger("sla_monitor.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sla-monitor",
        description="Measures and enforces a helpdesk's first-response, resolution and update "
        "SLAs, exporting Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"sla-monitor {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        help="TOML configuration file (default: $SLA_MONITOR_CONFIG, else "
        "/etc/sla-monitor/sla-monitor.toml when present)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the daemon (migrates first)")
    evaluate = commands.add_parser("evaluate", help="judge every open ticket once and print it")
    evaluate.add_argument("--json", action="store_true", help="print JSON (the default format)")
    evaluate.add_argument(
        "--now",
        type=_instant,
        default=None,
        metavar="ISO-8601",
        help="judge as of this instant (with a UTC offset) instead of the current time",
    )
    explain = commands.add_parser(
        "explain", help="explain one ticket's SLA clocks: policy, calendar, counted time"
    )
    explain.add_argument("ticket", metavar="TICKET", help="the ticket's id in the helpdesk")
    explain.add_argument("--json", action="store_true", help="print JSON instead of text")
    explain.add_argument(
        "--now",
        type=_instant,
        default=None,
        metavar="ISO-8601",
        help="explain as of this instant (with a UTC offset) instead of the current time",
    )
    report = commands.add_parser(
        "report",
        help="SLA compliance per group and customers at risk, from the recorded outcomes",
    )
    report.add_argument("--from", dest="start", metavar="DATE", help="first day (2026-11-01)")
    report.add_argument("--to", dest="end", metavar="DATE", help="last day, included")
    report.add_argument("--period", metavar="YYYY-MM", help="one calendar month (UTC)")
    report.add_argument("--last", metavar="SPAN", help="the last 30d, 12h, 4w (default 30d)")
    report.add_argument(
        "--by",
        action="append",
        metavar="GROUPING",
        help="queue (default), priority, policy, organization, customer or clock; repeatable",
    )
    report.add_argument("--format", default="table", help="table (default), csv, json or html")
    report.add_argument(
        "--now",
        type=_instant,
        default=None,
        metavar="ISO-8601",
        help="report as of this instant (with a UTC offset) instead of the current time",
    )
    commands.add_parser("check-config", help="validate the configuration and exit")
    commands.add_parser("migrate", help="create or upgrade the daemon's own schema")
    demo = commands.add_parser(
        "demo", help="embedded PostgreSQL with a live demo helpdesk, daemon on :9464"
    )
    demo.add_argument("--data-dir", default="var/demo", help="where the demo database lives")
    demo.add_argument("--seed", type=int, default=7, help="seed of the ticket generator")
    rt_sla = commands.add_parser(
        "import-rt-sla",
        help="print Request Tracker's SLA configuration (%%ServiceAgreements, "
        "%%ServiceBusinessHours) as sla-monitor TOML",
    )
    rt_sla.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="RT_SiteConfig.pm or RT_SiteConfig.d/*.pm files, read in order",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 done, 1 ``explain`` of an unknown (or unjudgeable) ticket, 64
    (EX_USAGE) a ``report`` asked with a bad date, period, grouping or format, 78
    (EX_CONFIG) a bad configuration, including a DSN that cannot be parsed, 69
    (EX_UNAVAILABLE) a database that refuses the login or does not exist (and, for the
    one-shot commands, one that cannot be reached; for ``report``, a schema not migrated)."""
    args = _parser().parse_args(argv)
    if args.command == "import-rt-sla":  # needs no configuration of its own
        return _import_rt_sla(args.paths)
    if args.command == "report":
        from sla_monitor.report import ReportError

        try:
            asked = _report_input(args)
        except ReportError as error:
            print(f"sla-monitor: report: {error}", file=sys.stderr)
            return EX_USAGE
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"sla-monitor: {error}", file=sys.stderr)
        return EX_CONFIG
    configure_logging(settings.daemon.log_level)
    if args.command == "check-config":
        policies = policy_set(settings)
        print(
            f"configuration OK: {len(policies.rules) + 1} policies, "
            f"{len(policies.priorities)} priorities, source {settings.source.name!r}"
        )
        return EX_OK
    try:
        if args.command == "run":
            from sla_monitor.app import TaskCrashed, serve

            try:
                asyncio.run(serve(settings, config=args.config))
            except TaskCrashed as crashed:
                print(f"sla-monitor: task {crashed} crashed (see the log)", file=sys.stderr)
                return EX_SOFTWARE
        elif args.command == "migrate":
            return asyncio.run(_migrate(settings))
        elif args.command == "evaluate":
            return asyncio.run(_evaluate(settings, args.now))
        elif args.command == "explain":
            return asyncio.run(_explain(settings, args.ticket, args.now, args.json))
        elif args.command == "report":
            # Millions of rows read and grouped, none of them in a cycle: the collector's full
            # passes over them were a third of a year's report (bench/bench_report.py).
            gc.disable()
            try:
                return asyncio.run(_report(settings, *asked))
            finally:
                gc.enable()
        elif args.command == "demo":
            asyncio.run(_demo(settings, Path(args.data_dir), args.seed))
    except KeyboardInterrupt:
        pass
    except ConfigError as error:  # a DSN set after loading that cannot be parsed
        print(f"sla-monitor: {error}", file=sys.stderr)
        return EX_CONFIG
    except DatabaseRefused as error:
        # One line, no traceback: restarting will not help until the configuration changes.
        print(f"sla-monitor: {error}", file=sys.stderr)
        return EX_UNAVAILABLE
    return EX_OK


def _import_rt_sla(paths: list[Path]) -> int:
    """Prints the TOML; exit 78 for files that cannot be read or hold no SLA levels, 69 when
    perl is missing."""
    from sla_monitor.rt_sla import RtConfigError, read_rt_config, rt_sla_toml

    this_year = date.today().year
    try:
        config = read_rt_config(paths)
        text = rt_sla_toml(
            config, range(this_year - 1, this_year + 5), ", ".join(str(p) for p in paths)
        )
    except RtConfigError as error:
        print(f"sla-monitor: import-rt-sla: {error}", file=sys.stderr)
        return error.exit_code
    sys.stdout.write(text)
    return EX_OK


async def _migrate(settings: Settings) -> int:
    """Migrates the state store: its pool and schema only, no daemon."""
    from sla_monitor.app import open_pools
    from sla_monitor.store import StateStore

    async with open_pools(settings) as (store_pool, _):
        store = StateStore(store_pool, settings.database.schema_name, settings.source.name)
        try:
            applied = await store.migrate()
        except DatabaseUnavailable as error:
            if (refused := error.refusal("database.dsn")) is not None:
                raise refused from None
            print(f"sla-monitor: cannot migrate: {error}", file=sys.stderr)
            return EX_UNAVAILABLE
    print(f"schema {settings.database.schema_name!r} is current; applied: {applied or 'none'}")
    return EX_OK


def _report_input(
    args: argparse.Namespace,
) -> tuple[datetime, datetime, tuple[str, ...], str, datetime]:
    """The report's period, groupings, format and ``now``; ReportError for bad input."""
    from sla_monitor.report import FORMATS, ReportError, groupings, period

    now = args.now or utcnow()
    start, end = period(args.start, args.end, args.period, args.last, now)
    by = groupings(args.by)
    if args.format not in FORMATS:
        raise ReportError(f"--format: unknown format {args.format!r} (one of {', '.join(FORMATS)})")
    return start, end, by, args.format, now


async def _report(
    settings: Settings,
    start: datetime,
    end: datetime,
    by: tuple[str, ...],
    output: str,
    now: datetime,
) -> int:
    """Reads the period's outcomes (and the churn window's, ending with the period or now)
    from the daemon's schema and prints the report."""
    from dataclasses import replace
    from datetime import timedelta

    from sla_monitor.app import churn_rules, open_pools
    from sla_monitor.report import RENDERERS, build, churn_rate, churn_risk, render_html
    from sla_monitor.sources.sql.churned import churned_customers
    from sla_monitor.store import StateStore
    from sla_monitor.store.report import ReportStore

    rules = churn_rules(settings)
    churn_end = min(end, now)
    churn_start = churn_end - timedelta(seconds=rules.window)
    churned_query = settings.churn.churned_customers_query
    first = min(start, churn_start)
    if churned_query:  # the churn rate's base: the window ending at the period's start
        first = min(first, start - timedelta(seconds=rules.window))
    churned: list[str] | None = None
    schema = settings.database.schema_name
    async with open_pools(settings) as (store_pool, source_pool):
        store = ReportStore(store_pool, schema, settings.source.name)
        try:
            missing = await StateStore(
                store_pool, schema, settings.source.name
            ).missing_migrations()
            if missing:
                print(
                    f"sla-monitor: report: the schema {schema!r} lacks migrations "
                    f"{', '.join(f'{v:04d}' for v in missing)} of this version; run "
                    "`sla-monitor migrate` (or start the daemon) with this configuration first",
                    file=sys.stderr,
                )
                return EX_UNAVAILABLE
            completions = await store.completions(first, end)
            breaches = await store.breaches(first, end)
            updates = await store.updates(start, end)
        except DatabaseUnavailable as error:
            if (refused := error.refusal("database.dsn")) is not None:
                raise refused from None
            print(f"sla-monitor: cannot read the recorded outcomes: {error}", file=sys.stderr)
            return EX_UNAVAILABLE
        if churned_query:
            try:
                churned = await churned_customers(source_pool, churned_query, start, end)
            except DatabaseUnavailable as error:
                if (refused := error.refusal("source.dsn")) is not None:
                    raise refused from None
                print(
                    f"sla-monitor: report: churn.churned_customers_query failed: {error}",
                    file=sys.stderr,
                )
                return EX_UNAVAILABLE
    report = build(completions, breaches, by, start, end, updates)
    report = replace(
        report,
        at_risk=tuple(churn_risk(completions, breaches, rules, churn_end)),
        churn_start=churn_start,
        churn_rate=(
            None
            if churned is None
            else churn_rate(completions, breaches, churned, rules, start, end)
        ),
    )
    if output == "html":
        text = render_html(report, floor=rules.min_compliance)
    else:
        text = RENDERERS[output](report)
    sys.stdout.write(text)
    return EX_OK


def evaluation_json(
    evaluation: TicketEvaluation, matched: dict[str, Any] | str | None = None
) -> dict[str, Any]:
    """One ticket of ``evaluate --json``; ``matched`` says why its policy applies (see
    ``policy_match``)."""

    def when(moment: Any) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "ticket_id": evaluation.ticket_id,
        "status": evaluation.status,
        "priority": evaluation.priority,
        "queue": evaluation.queue,
        "policy": evaluation.policy,
        "matched": matched,
        "clocks": {
            clock.value: {
                "state": status.state.value,
                "target_seconds": status.target_seconds,
                "elapsed_seconds": round(status.elapsed_seconds, 3),
                "remaining_seconds": round(status.remaining_seconds, 3),
                "deadline": when(status.deadline),
                "at_risk_at": when(status.at_risk_at),
                "breached_at": when(status.breached_at),
                "started_at": when(status.started_at),
                "stopped_at": when(status.stopped_at),
            }
            for clock, status in evaluation.clocks.items()
        },
    }


def policy_match(ticket: Ticket, priority: str, policies: PolicySet) -> dict[str, Any] | str:
    """Why the policy for ``priority`` (the ticket's, as judged) applies: the fields its rule
    matched on (e.g. ``{"attributes.plan": "gold", "priority": "urgent"}``; ``{}`` for a rule
    without criteria), or that no rule matched."""
    _, matched = policies.explain(
        priority, ticket.queue, ticket.customer, ticket.organization, ticket.attributes
    )
    return "default (no rule matched)" if matched is None else matched


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. +00:00")
    return moment


async def _evaluate(settings: Settings, at: datetime | None = None) -> int:
    from sla_monitor.app import build_daemon, open_pools

    now = at or utcnow()
    tickets: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    async with open_pools(settings) as (store_pool, source_pool):
        daemon = build_daemon(settings, store_pool, source_pool)
        policies = daemon.tracker.policies
        try:
            async for batch in daemon.source.open_tickets():
                bad.extend(
                    {"ticket_id": b.ticket_id, "reason": b.reason, "detail": b.detail}
                    for b in batch.bad_rows
                )
                for ticket in batch.tickets:
                    try:
                        evaluation = evaluate_ticket(ticket, policies, now)
                        tickets.append(
                            evaluation_json(
                                evaluation, policy_match(ticket, evaluation.priority, policies)
                            )
                        )
                    except TicketError as error:
                        bad.append(
                            {
                                "ticket_id": ticket.ticket_id,
                                "reason": error.reason,
                                "detail": error.detail,
                            }
                        )
        except (DatabaseUnavailable, SourceError) as error:
            return _source_unreadable(settings, error)
    report = {"evaluated_at": now.isoformat(), "tickets": tickets, "bad_rows": bad}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EX_OK


def _source_unreadable(settings: Settings, error: DatabaseUnavailable | SourceError) -> int:
    """The exit of a command that could not read the source: a refused login or a missing
    database raises DatabaseRefused (exit 69 naming the setting), anything else is one line."""
    if isinstance(error, DatabaseUnavailable):
        setting = "source.dsn" if settings.source.dsn is not None else "database.dsn"
        if (refused := error.refusal(setting)) is not None:
            raise refused from None
        print(f"sla-monitor: cannot read the source: {error}", file=sys.stderr)
    else:
        print(
            f"sla-monitor: cannot read the source: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
    return EX_UNAVAILABLE


async def _explain(settings: Settings, ticket_id: str, at: datetime | None, as_json: bool) -> int:
    """Reads one ticket (open or resolved) from the source and explains its clocks; exit 1
    for an id the source does not have or a ticket it cannot judge."""
    from sla_monitor.app import build_daemon, open_pools
    from sla_monitor.engine.explain import (
        explain_ticket,
        explanation_json,
        explanation_text,
        so_far,
    )
    from sla_monitor.engine.ledger import LedgerEntry
    from sla_monitor.sources import BadRow

    now = at or utcnow()
    async with open_pools(settings) as (store_pool, source_pool):
        daemon = build_daemon(settings, store_pool, source_pool)
        try:
            found = await daemon.source.ticket(ticket_id)
        except (DatabaseUnavailable, SourceError) as error:
            return _source_unreadable(settings, error)
        if found is None:
            print(f"sla-monitor: no ticket {ticket_id!r} in the source", file=sys.stderr)
            return EX_NOT_FOUND
        if isinstance(found, BadRow):
            print(
                f"sla-monitor: ticket {ticket_id!r} cannot be judged: {found.reason}: "
                f"{found.detail}",
                file=sys.stderr,
            )
            return EX_NOT_FOUND
        try:
            explanation = explain_ticket(found, daemon.tracker.policies, now)
        except TicketError as error:
            print(f"sla-monitor: ticket {ticket_id!r} cannot be judged: {error}", file=sys.stderr)
            return EX_NOT_FOUND
        try:  # the ledger so far, as the daemon recorded it
            ledger: list[LedgerEntry] | None = so_far(
                await daemon.store.ledger(ticket_id), explanation
            )
        except DatabaseUnavailable:  # e.g. not migrated yet: the explanation stands alone
            ledger = None
    if as_json:
        json.dump(explanation_json(explanation, ledger=ledger), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(explanation_text(explanation, ledger))
    return EX_OK


async def _demo(settings: Settings, data_dir: Path, seed: int) -> None:
    from sla_monitor.app import serve, start_embedded_postgres
    from sla_monitor.demo import TicketGenerator, demo_settings, load_reference_schema

    dsn, server = start_embedded_postgres(data_dir / "pgdata")
    try:
        await load_reference_schema(dsn)
        settings = demo_settings(settings, data_dir / "pgdata")
        settings.database.dsn = SecretStr(dsn)
        print(
            f"sla-monitor demo: helpdesk in {data_dir}, metrics at "
            f"http://{settings.daemon.listen_host}:{settings.daemon.listen_port}/metrics "
            "(Ctrl-C stops)",
            file=sys.stderr,
        )
        await serve(settings, extra_tasks=(TicketGenerator(dsn, seed=seed).run(),), config=None)
    finally:
        server.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
