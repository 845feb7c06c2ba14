"""Wires settings into running parts: database pools, source, store, tracker, daemon, HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import structlog

from sla_monitor.backoff import backoff
from sla_monitor.config import (
    ConfigError,
    Settings,
    dsn_problem,
    escalation_levels,
    load_settings,
    policy_set,
)
from sla_monitor.daemon import Daemon
from sla_monitor.daemon_options import Hooks, Timing
from sla_monitor.database import Pool, create_pool
from sla_monitor.engine.owed_updates import QuietHours
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.escalation_planner import EscalationPlanner
from sla_monitor.http import start_http
from sla_monitor.judge import Judge
from sla_monitor.leadership import (
    Leadership,
    PgLockSession,
    application_name,
    config_hash,
    lock_key,
)
from sla_monitor.metrics import Metrics
from sla_monitor.notifiers import Notifier
from sla_monitor.notifiers.alertmanager import AlertmanagerNotifier
from sla_monitor.notifiers.helpdesk_sql import HelpdeskSqlUpdater
from sla_monitor.notifiers.pagerduty import PagerDutyNotifier
from sla_monitor.notifiers.rt import RtUpdater
from sla_monitor.notifiers.slack import SlackNotifier
from sla_monitor.notifiers.webhook import WebhookNotifier
from sla_monitor.outbox import OutboxSender
from sla_monitor.report import ChurnRules
from sla_monitor.retention import Retention
from sla_monitor.sources.sql import SqlSource
from sla_monitor.store import StateStore
from sla_monitor.store.outbox import Fence
from sla_monitor.store.report import ChurnWatch, ReportStore
from sla_monitor.systemd import SystemdHeartbeat, SystemdNotifier
from sla_monitor.templates import UpdateTemplates
from sla_monitor.tracker import Tracker
from sla_monitor.update_planner import UpdatePlanner

log = structlog.get_logger("sla_monitor.app")


def start_embedded_postgres(data_dir: Path) -> tuple[str, Any]:
    """Starts (or reuses) the embedded PostgreSQL of the ``pgserver`` package."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR under root
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir.resolve(), cleanup_mode="stop")
        return server.get_uri(), server


def check_dsns(settings: Settings) -> None:
    """Raises ConfigError naming the setting whose DSN cannot be parsed, never the DSN."""
    for field, dsn in (
        ("database.dsn", settings.database.dsn),
        ("source.dsn", settings.source.dsn),
    ):
        if dsn is not None and (problem := dsn_problem(dsn.get_secret_value())):
            raise ConfigError(
                f"{field}: the DSN cannot be parsed: {problem}; percent-encode special "
                "characters in the password"
            )


def churn_rules(settings: Settings) -> ChurnRules:
    """The [churn] section as the report's rules."""
    churn = settings.churn
    return ChurnRules(churn.window, churn.min_breaches, churn.min_compliance, churn.max_wait)


@contextlib.asynccontextmanager
async def open_pools(settings: Settings) -> AsyncIterator[tuple[Pool, Pool]]:
    """The state store's pool and the source's pool (see _open_database)."""
    async with _open_database(settings) as (_, store_pool, source_pool):
        yield store_pool, source_pool


@contextlib.asynccontextmanager
async def _open_database(settings: Settings) -> AsyncIterator[tuple[str, Pool, Pool]]:
    """The state store's pool and the source's pool (the same one unless a source DSN is set).

    Pools open without connecting (min_size=0) so the daemon starts, reports not ready and
    retries while the database is away. A DSN asyncpg cannot parse is a ConfigError here too
    (for settings changed after loading), not a traceback quoting its password.
    """
    check_dsns(settings)
    server = None
    if settings.database.dsn is None:
        dsn, server = start_embedded_postgres(settings.database.embedded_data_dir)
        log.info("embedded_postgres", data_dir=str(settings.database.embedded_data_dir))
    else:
        dsn = settings.database.dsn.get_secret_value()
    senders, updater = delivery_connections(settings)
    source_dsn = settings.source.dsn
    store_pool = await create_pool(dsn, senders + (updater if source_dsn is None else 0))
    source_pool = store_pool
    if source_dsn is not None:
        source_pool = await create_pool(source_dsn.get_secret_value(), updater)
    try:
        yield dsn, store_pool, source_pool
    finally:
        for pool in {id(store_pool): store_pool, id(source_pool): source_pool}.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), timeout=2)
        if server is not None:
            server.cleanup()


def delivery_connections(settings: Settings) -> tuple[int, int]:
    """Connections the outbox senders may hold at once, on top of the poller's: (on the store,
    on the helpdesk). Each channel's sender keeps its claim's transaction open while it sends,
    one more serves the backlog gauge and rows of removed channels; the SQL and RT updaters
    query the helpdesk during a send. Sized so delivery can never starve polling."""
    updates = settings.updates
    posting = updates.enabled and updates.mode == "post"
    channels = len(build_notifiers(settings)) + (1 if posting else 0)
    return channels + 1, 1 if posting and updates.delivery in ("sql", "rt") else 0


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """The configured channels that some escalation level uses."""
    channels = settings.escalation.channels
    used = {channel for level in settings.escalation.levels for channel in level.channels}
    notifiers: dict[str, Notifier] = {}
    if "alertmanager" in used and channels.alertmanager is not None:
        notifiers["alertmanager"] = AlertmanagerNotifier(
            channels.alertmanager.url, channels.alertmanager.resend_interval
        )
    if "pagerduty" in used and channels.pagerduty is not None:
        notifiers["pagerduty"] = PagerDutyNotifier(
            channels.pagerduty.url, channels.pagerduty.routing_key.get_secret_value()
        )
    if "slack" in used and channels.slack is not None:
        notifiers["slack"] = SlackNotifier(channels.slack.webhook_url.get_secret_value())
    if "webhook" in used and channels.webhook is not None:
        notifiers["webhook"] = WebhookNotifier(
            channels.webhook.url, channels.webhook.secret.get_secret_value()
        )
    return notifiers


def update_channel(settings: Settings) -> str:
    return {"sql": "helpdesk", "webhook": "update_webhook", "rt": "rt"}[settings.updates.delivery]


def rt_auth(settings: Settings) -> dict[str, str]:
    source = settings.source
    if source.rt_token is not None:
        return {"Authorization": f"token {source.rt_token.get_secret_value()}"}
    password = source.rt_password.get_secret_value() if source.rt_password else ""
    credentials = base64.b64encode(f"{source.rt_user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def updates_author(settings: Settings) -> str:
    """Whose correspondence is a progress update: RT's posting user, else updates.author."""
    return settings.source.rt_user if settings.source.kind == "rt" else settings.updates.author


def build_update_planner(settings: Settings) -> UpdatePlanner | None:
    updates = settings.updates
    if not updates.enabled or updates.mode != "post":
        return None
    return UpdatePlanner(
        templates=UpdateTemplates(updates.templates_dir, updates.default_language),
        min_ticket_age=updates.min_ticket_age,
        quiet_hours=None if updates.quiet_hours is None else QuietHours.parse(updates.quiet_hours),
        default_timezone=updates.default_timezone,
        max_per_day=updates.max_per_day,
        channel=update_channel(settings),
    )


def build_sender(
    settings: Settings,
    tracker: Tracker,
    metrics: Metrics,
    pool: Pool,
    source_pool: Pool | None = None,
    leadership: tuple[Callable[[], bool], Fence] | None = None,
) -> OutboxSender:
    """``leadership``: (may_send, fence) of a replica (see sla_monitor.leadership)."""
    notifiers = build_notifiers(settings)
    updates = settings.updates
    if updates.enabled and updates.mode == "post":
        if updates.delivery == "sql":
            notifiers["helpdesk"] = HelpdeskSqlUpdater(
                source_pool or pool, updates.insert_query, updates.author
            )
        elif updates.delivery == "rt" and settings.source.rt_url:
            notifiers["rt"] = RtUpdater(
                settings.source.rt_url,
                rt_auth(settings),
                settings.source.rt_user,
                source_pool or pool,
            )
        elif updates.webhook_url and updates.webhook_secret:
            notifiers["update_webhook"] = WebhookNotifier(
                updates.webhook_url, updates.webhook_secret.get_secret_value(), "update_webhook"
            )

    def still_owed(ticket_id: str) -> bool | None:
        """Owed while the tracker says so; unknown (wait) until its first sync is done."""
        return ticket_id in tracker.owing if tracker.complete else None

    sender = OutboxSender(
        pool,
        settings.database.schema_name,
        notifiers,
        metrics,
        timeout=settings.escalation.timeout,
        retry_initial=settings.escalation.retry_initial,
        retry_max=settings.escalation.retry_max,
        still_owed=still_owed,
        max_pages_per_minute=settings.escalation.max_pages_per_minute,
        may_send=None if leadership is None else leadership[0],
        fence=None if leadership is None else leadership[1],
    )
    metrics.customer_updates.labels("cancelled")
    for level in escalation_levels(settings):  # every series exists from the start, at 0
        for channel in level.channels:
            for result in ("delivered", "failed"):
                metrics.escalations.labels(level.name, channel, result)
            metrics.pages_digested.labels(channel)
    return sender


def build_tracker(settings: Settings) -> tuple[Tracker, Metrics]:
    """The tracker of open tickets and the metrics that count it (built before anything is
    tracked: queue labels are bounded from the first ticket)."""
    tracker = Tracker(policy_set(settings))
    return tracker, Metrics(tracker, max_queues=settings.daemon.max_queues)


def build_daemon(
    settings: Settings,
    store_pool: Pool,
    source_pool: Pool,
    hooks: Hooks | None = None,
    tracked: tuple[Tracker, Metrics] | None = None,
    leading: Callable[[], bool] | None = None,
) -> Daemon:
    tracker, metrics = tracked or build_tracker(settings)
    source = SqlSource(
        source_pool,
        name=settings.source.name,
        changed_tickets_query=settings.source.changed_tickets_query,
        open_tickets_query=settings.source.open_tickets_query,
        events_query=settings.source.events_query,
        resolved_statuses=settings.statuses.resolved,
        initial_status=settings.statuses.open[0] if settings.statuses.open else "new",
        batch_size=settings.source.batch_size,
        updates_author=updates_author(settings),
    )
    store = StateStore(store_pool, settings.database.schema_name, settings.source.name)
    timing = Timing(
        poll_interval=settings.daemon.poll_interval,
        watermark_lag=settings.source.watermark_lag,
        backfill=settings.source.backfill,
        reconcile_interval=settings.source.reconcile_interval,
    )
    escalations = EscalationPlanner(
        settings.source.name,
        escalation_levels(settings),
        settings.escalation.ticket_url,
        settings.escalation.backlog,
        settings.http.public_url,
    )
    judge = Judge(source.name, tracker, metrics, escalations, build_update_planner(settings))
    return Daemon(source, store, judge, timing, hooks, leading=leading)


async def migrate_until_ready(daemon: Daemon, stop: asyncio.Event) -> bool:
    """Runs migrations, retrying while the database is unreachable; False if stopped first.
    Raises DatabaseRefused when the server rejects the login or has no such database, and
    DatabaseUnavailable when it rejects a migration."""
    failures = 0
    while not stop.is_set():
        try:
            applied = await daemon.store.migrate()
            log.info("migrated", applied=applied)
            return True
        except DatabaseUnavailable as error:
            if (refused := error.refusal("database.dsn")) is not None:
                raise refused from None
            if not error.unreachable:
                raise
            # 0.5 s, doubling to 30 s.
            delay = backoff(failures, 0.5, 30.0)
            failures += 1
            daemon.down(str(error))
            log.error("database_unreachable", error=daemon.last_error, retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    return False


def reload_policies(daemon: Daemon, config: str | None) -> bool:
    """SIGHUP: re-reads the configuration and applies its policies; a bad file changes nothing.

    Only policies, statuses and priorities take effect; other settings need a restart.
    """
    try:
        settings = load_settings(config)
    except ConfigError as error:
        daemon.metrics.config_reload_successful.set(0)
        log.error("reload_failed", error=str(error), kept="previous configuration")
        return False
    daemon.reload(policy_set(settings))
    daemon.metrics.config_reload_successful.set(1)
    return True


async def serve(
    settings: Settings,
    extra_tasks: tuple[Any, ...] = (),
    config: str | None = None,
    reload: bool = True,
) -> None:
    """Runs the daemon and its HTTP server until SIGTERM or SIGINT; SIGHUP reloads policies."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    notifier = SystemdNotifier()
    async with _open_database(settings) as (dsn, store_pool, source_pool):
        tracker, metrics = build_tracker(settings)
        leadership, key = build_leadership(settings, dsn, config, metrics, validate=reload)

        def leading() -> bool:
            return leadership.leading()

        async def fence(conn: Any) -> bool:
            return await leadership.fence(conn, key)

        sender = build_sender(settings, tracker, metrics, store_pool, source_pool, (leading, fence))
        interval = notifier.watchdog_interval() or 1.0
        heartbeat = SystemdHeartbeat(notifier, interval)
        hooks = Hooks(
            heartbeat=heartbeat,
            heartbeat_interval=interval,
            sync_progress=heartbeat.syncing,
            on_outbox=sender.wake,
            freeze_gc=True,
        )
        daemon = build_daemon(settings, store_pool, source_pool, hooks, (tracker, metrics), leading)
        if reload:
            loop.add_signal_handler(signal.SIGHUP, reload_policies, daemon, config)
        # The bounded churn gauge, recounted from the recorded outcomes (its own task, below).
        churn = ChurnWatch(
            ReportStore(store_pool, settings.database.schema_name, settings.source.name),
            churn_rules(settings),
            metrics,
            settings.churn.interval,
        )
        runner = await start_http(
            daemon,
            settings.daemon.listen_host,
            settings.daemon.listen_port,
            settings.http,
            lambda: churn.latest,
        )
        log.info("listening", host=settings.daemon.listen_host, port=settings.daemon.listen_port)
        supervised = {
            asyncio.create_task(coroutine, name=f"extra-{index}"): f"extra-{index}"
            for index, coroutine in enumerate(extra_tasks)
        }
        crashed: str | None = None
        try:
            # Every replica migrates at start (under the migration lock; a no-op on a current
            # schema): a standby reads the stored watermark for its sync.
            if await migrate_until_ready(daemon, stop):
                poller = asyncio.create_task(daemon.run(), name="poller")
                alertmanager = settings.escalation.channels.alertmanager
                resend = alertmanager.resend_interval if alertmanager is not None else None
                retention = (
                    Retention(
                        store_pool, settings.database.schema_name, settings.retention, metrics
                    )
                    if settings.retention.enabled
                    else None
                )
                duties = LeaderDuties(sender, resend, retention, metrics)

                def on_lead() -> None:
                    daemon.take_over()
                    duties.lead()

                leadership.on_lead = on_lead
                leadership.on_step_down = duties.step_down
                leader = asyncio.create_task(duties.run(), name="leader")
                supervised |= {poller: "poller", leader: "leader"}
                supervised[asyncio.create_task(leadership.run(), name="leadership")] = "leadership"
                supervised[asyncio.create_task(churn.run(), name="churn")] = "churn"
                crashed = await _until_stopped_or_crashed(stop, supervised, daemon)
                notifier.notify(stopping="1", status="stopping")
                daemon.stop()
                duties.stop()
                # What has not ended by the timeout (a send to a hanging channel) is cancelled:
                # its transaction rolls back, so the row stays pending for the next start.
                _, late = await asyncio.wait(
                    (poller, leader), timeout=settings.daemon.shutdown_timeout
                )
                for task in late:
                    task.cancel()
                ended = await asyncio.gather(poller, leader, return_exceptions=True)
                await sender.close()
                if late:
                    log.warning("stop_timeout", cancelled=len(late))
                for name, result in zip(("poller", "leader"), ended, strict=True):
                    if crashed is None and isinstance(result, Exception):
                        log.critical("task_crashed", task=name, exc_info=result)
                        crashed = name
        finally:
            # The lock goes last (leadership's task steps down when cancelled): the senders
            # have stopped by then.
            for task in supervised:
                task.cancel()
            await asyncio.gather(*supervised, return_exceptions=True)
            await runner.cleanup()
            log.info("stopped")
        if crashed is not None:
            raise TaskCrashed(crashed)


def build_leadership(
    settings: Settings, dsn: str, config: str | None, metrics: Metrics, validate: bool = True
) -> tuple[Leadership, int]:
    """The replica's leadership (see sla_monitor.leadership) and its lock key. With
    ``validate``, a standby refuses to lead while its configuration (``config``, or where
    load_settings finds it, as at start) no longer validates."""
    schema, source = settings.database.schema_name, settings.source.name
    key = lock_key(schema, source)
    hashed = config_hash(settings)
    name = application_name(schema, source, hashed)

    async def connect() -> PgLockSession:
        return await PgLockSession.connect(dsn, key, name)

    def may_lead() -> str | None:
        if not validate:
            return None
        try:
            load_settings(config)
        except ConfigError as error:
            return f"the configuration no longer validates: {error}"
        return None

    metrics.leader.set(0)
    leadership = Leadership(
        connect,
        hashed,
        may_lead=may_lead,
        on_change=lambda leading: metrics.leader.set(1 if leading else 0),
    )
    log.info("replica", config_hash=hashed, role="standby")
    return leadership, key


class LeaderDuties:
    """What only the leader runs: the outbox senders and retention. Started when this
    replica takes the lead, cancelled the moment it steps down (the senders also ask
    leadership before every claim, and the database fences each claim)."""

    def __init__(
        self,
        sender: OutboxSender,
        resend: float | None,
        retention: Retention | None,
        metrics: Metrics,
    ) -> None:
        self.sender = sender
        self.resend = resend
        self.retention = retention
        self.metrics = metrics
        self._leading = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()

    def lead(self) -> None:
        self._lost.clear()
        self._leading.set()

    def step_down(self, reason: str) -> None:
        self._leading.clear()
        self._lost.set()

    def stop(self) -> None:
        self._stopping.set()
        self.sender.stop()

    async def run(self) -> None:
        """Runs the duties during each tenure, until stopped; a duty ending on its own is a
        crash (raised)."""
        while not self._stopping.is_set():
            waiting = {
                asyncio.create_task(self._leading.wait()),
                asyncio.create_task(self._stopping.wait()),
            }
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in waiting:
                task.cancel()
            if self._stopping.is_set():
                return
            await self._tenure()

    async def _tenure(self) -> None:
        self.sender.restart()
        duties = {asyncio.create_task(self.sender.run(self.resend), name="sender")}
        if self.retention is not None:
            duties.add(asyncio.create_task(self.retention.run(), name="retention"))
        lost = asyncio.create_task(self._lost.wait())
        try:
            done, _ = await asyncio.wait({*duties, lost}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Cancelled at the shutdown timeout (a send hanging): asyncio.wait leaves the
            # duties running, and a send cut later by the closing HTTP session would count a
            # failed attempt; cancelled here, its claim's transaction rolls back instead.
            for task in (*duties, lost):
                task.cancel()
            await asyncio.gather(*duties, lost, return_exceptions=True)
            raise
        lost.cancel()
        if self._stopping.is_set():
            # The sender ends by itself after its current attempt; retention is cancelled.
            for task in duties:
                if task.get_name() == "retention":
                    task.cancel()
            results = await asyncio.gather(*duties, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    raise result
            return
        for task in duties:
            task.cancel()
        results = await asyncio.gather(*duties, return_exceptions=True)
        ended = [task for task in done if task is not lost]
        if ended:
            error = ended[0].exception() if not ended[0].cancelled() else None
            raise error or RuntimeError(f"{ended[0].get_name()} ended unexpectedly")
        # Stepped down: the gauges of the outbox are the leader's to tell.
        self.metrics.outbox_pending.set(0)
        self.metrics.outbox_oldest_age.set(0)
        log.info("leader_duties_stopped")


class TaskCrashed(Exception):
    """A long-running task of the service ended on its own: the process must exit non-zero
    so that its supervisor (systemd) restarts it."""


async def _until_stopped_or_crashed(
    stop: asyncio.Event, supervised: dict[asyncio.Task[Any], str], daemon: Daemon
) -> str | None:
    """Waits for a stop request, or for any supervised task to end, which is a crash: none
    of them ends while the service runs. Returns the crashed task's name, logged with its
    traceback; /readyz fails from then on."""
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({stopping, *supervised}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    for task in done:
        if task is stopping or task.cancelled():
            continue
        name = supervised[task]
        error = task.exception()
        reason = f"task {name} crashed: " + (
            "ended unexpectedly" if error is None else f"{type(error).__name__}: {error}"
        )
        daemon.down(reason)
        log.critical("task_crashed", task=name, exc_info=error, error=reason)
        return name
    return None
