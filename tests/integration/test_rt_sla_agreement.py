"""sla-monitor, configured by `import-rt-sla` from RT's own SLA file, against the Due dates
Request Tracker 5 itself computes for the same tickets.

scripts/rt/start.sh installs scripts/rt/sla.pm into RT (levels `24x7`, `office`,
`office-long` on the queue "SLA"). Each ticket's history is made through REST2 and then moved
to fixed instants of November 2026 (the same week every run, away from DST changes); setting
its SLA level afterwards makes RT compute Due from that history. The same tickets are then
judged by `sla-monitor evaluate` with the imported configuration, and RT's Due is compared
with the deadline of the clock it stands for. Where the semantics coincide they must agree to
the second; the deliberate differences (README "Monitoring Request Tracker") are asserted as
exactly what they are.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.test_cli import sla_monitor
from tests.integration.test_rt import (  # noqa: F401 (fixtures)
    RT_URL,
    RtHelpdesk,
    helpdesk,
    reader_dsn,
    rest,
    rt,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
RT_SLA_FILE = ROOT / "scripts" / "rt" / "sla.pm"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Case:
    """One ticket: its level, its history (action, UTC instant), and which sla-monitor clock
    RT's Due stands for; ``rt_due``/``sla_deadline`` are set only for a difference by design
    (``rt_due`` None: RT leaves Due unset; ``sla_deadline`` "met": the clock has stopped)."""

    name: str
    level: str
    history: list[tuple[str, str]]
    clock: str
    expected: str  # the deadline both agree on, or "by design"
    rt_due: str | None = None
    sla_deadline: str | None = None


CASES = [
    # 24x7: Response 60, KeepInLoop 240, Resolve 1440 real minutes.
    Case("24x7 unanswered", "24x7", [("create", "2026-11-02 10:00")], "first_response",
         "2026-11-02 11:00"),
    Case("24x7 answered", "24x7", [("create", "2026-11-02 10:00"), ("reply", "2026-11-02 10:20")],
         "update", "2026-11-02 14:20"),
    Case("24x7 customer wrote again", "24x7",
         [("create", "2026-11-02 10:00"), ("reply", "2026-11-02 10:20"),
          ("customer", "2026-11-03 08:00")], "next_reply", "2026-11-03 09:00"),
    Case("24x7 answered late", "24x7",
         [("create", "2026-11-02 10:00"), ("reply", "2026-11-03 09:00")], "resolution",
         "2026-11-03 10:00"),
    # office: Mon-Fri 09:00-17:00 Europe/Berlin (UTC+1 in November), Wednesday 11-11 off;
    # Response 120, Resolve 480 business minutes.
    Case("office unanswered", "office", [("create", "2026-11-02 10:30")], "first_response",
         "2026-11-02 12:30"),
    Case("office over the weekend", "office",
         [("create", "2026-11-06 15:00"), ("reply", "2026-11-06 15:30")], "resolution",
         "2026-11-09 15:00"),
    Case("office over a holiday", "office",
         [("create", "2026-11-10 14:00"), ("reply", "2026-11-10 14:10")], "resolution",
         "2026-11-12 14:00"),
    # Differences by design.
    Case("Response restarted by the customer", "24x7",
         [("create", "2026-11-02 10:00"), ("reply", "2026-11-02 10:20"),
          ("customer", "2026-11-03 08:00")], "first_response", "by design",
         rt_due="2026-11-03 09:00", sla_deadline="met"),
    Case("target ending at closing time", "office", [("create", "2026-11-06 14:00")],
         "first_response", "by design",
         rt_due="2026-11-09 08:00", sla_deadline="2026-11-06 16:00"),
    Case("Business::Hours' 30-day limit", "office-long",
         [("create", "2026-11-02 10:00"), ("reply", "2026-11-02 10:30")], "resolution",
         "by design", rt_due=None, sla_deadline="2026-12-08 10:00"),
]  # fmt: skip


def customer_writes(ticket: str) -> None:
    """Correspondence by the requestor. (RT answers the German-speaking customer in Latin-1,
    which ``rest`` cannot decode: the answer's status is all that is needed.)"""
    token = base64.b64encode(b"customer:customer-pass").decode()
    request = urllib.request.Request(
        f"{RT_URL}/REST/2.0/ticket/{ticket}/correspond",
        method="POST",
        data=json.dumps({"Content": "Any news?", "ContentType": "text/plain"}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201, response.read()


async def make_history(desk: RtHelpdesk, case: Case) -> str:
    """The case's ticket in RT, its transactions moved to the case's instants, and then its
    SLA level set: RT computes Due from that history."""
    ticket = desk.open_ticket(case.name, Queue="SLA")
    stamps: list[tuple[int, datetime]] = []  # (last transaction id of the action, instant)

    async def last_transaction() -> int:
        return int(
            await desk.admin.fetchval(
                "SELECT max(id) FROM transactions WHERE objecttype = 'RT::Ticket' "
                "AND objectid = $1",
                int(ticket),
            )
        )

    for action, instant in case.history:
        if action == "reply":
            desk.reply(ticket)
        elif action == "customer":
            customer_writes(ticket)
        stamps.append((await last_transaction(), utc(instant)))
    first = 0
    for last, instant in stamps:  # RT keeps UTC without a zone
        await desk.admin.execute(
            "UPDATE transactions SET created = $3 WHERE objecttype = 'RT::Ticket' "
            "AND objectid = $1 AND id > $2 AND id <= $4",
            int(ticket),
            first,
            instant.replace(tzinfo=None),
            last,
        )
        first = last
    await desk.admin.execute(
        "UPDATE tickets SET created = $2 WHERE id = $1",
        int(ticket),
        stamps[0][1].replace(tzinfo=None),
    )
    rest("PUT", f"ticket/{ticket}", "root", {"SLA": case.level})
    return ticket


async def rt_due(desk: RtHelpdesk, ticket: str) -> datetime | None:
    due = await desk.admin.fetchval("SELECT due FROM tickets WHERE id = $1", int(ticket))
    return None if due is None or due.year == 1970 else due.replace(tzinfo=UTC)  # 1970: unset


async def test_sla_monitor_deadlines_agree_with_rt_due(
    helpdesk: RtHelpdesk,  # noqa: F811 (the fixture of test_rt)
    database_dsn: str,
    reader_dsn: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    imported = sla_monitor("import-rt-sla", str(RT_SLA_FILE))
    assert imported.returncode == 0, imported.stderr
    config = tmp_path / "sla-monitor.toml"
    config.write_text('[source]\nkind = "rt"\n\n' + imported.stdout)

    tickets = {case.name: await make_history(helpdesk, case) for case in CASES}
    dues = {name: await rt_due(helpdesk, ticket) for name, ticket in tickets.items()}
    result = sla_monitor(
        "--config",
        str(config),
        "evaluate",
        "--json",
        env={"SLA_MONITOR_DATABASE__DSN": database_dsn, "SLA_MONITOR_SOURCE__DSN": reader_dsn},
    )
    assert result.returncode == 0, result.stderr
    judged = {t["ticket_id"]: t for t in json.loads(result.stdout)["tickets"]}

    rows, agreeing, by_design = [], 0, 0
    for case in CASES:
        evaluation = judged[tickets[case.name]]
        assert evaluation["policy"] == f"rt_{case.level.replace('-', '_')}", case.name
        clock = evaluation["clocks"][case.clock]
        deadline = clock["deadline"] and datetime.fromisoformat(clock["deadline"])
        due = dues[case.name]
        shown = deadline or f"{clock['state']} at {clock['stopped_at']}"
        rows.append(f"{case.name:36} {case.clock:15} RT Due {due}  sla-monitor {shown}")
        if case.expected != "by design":
            assert due == deadline == utc(case.expected), rows[-1]
            agreeing += 1
        else:
            assert due == (None if case.rt_due is None else utc(case.rt_due)), rows[-1]
            if case.sla_deadline == "met":  # stopped by the staff reply, no deadline left
                assert clock["state"] == "met", rows[-1]
            else:
                assert deadline == utc(case.sla_deadline or ""), rows[-1]
            by_design += 1
    # Business::Hours gives up after 30 days; the target needs more calendar time than that.
    long_case = tickets["Business::Hours' 30-day limit"]
    created = utc("2026-11-02 10:00")
    long_deadline = judged[long_case]["clocks"]["resolution"]["deadline"]
    assert datetime.fromisoformat(long_deadline) - created > timedelta(days=30)
    print("\n".join(["", *rows]))
    print(
        f"RT Due vs sla-monitor: {len(CASES)} deadlines compared, {agreeing} agree to the "
        f"second, {by_design} differ by design"
    )
    assert agreeing + by_design == len(CASES)


async def test_the_agreement_queue_alone_has_rt_sla(helpdesk: RtHelpdesk) -> None:  # noqa: F811
    """General keeps SLA disabled, so the other RT tests' tickets get no level and no Due."""
    disabled = dict(await helpdesk.admin.fetch("SELECT name, sladisabled FROM queues"))
    assert disabled["General"] == 1 and disabled["SLA"] == 0
    plain = helpdesk.open_ticket("no SLA here")
    row = await helpdesk.admin.fetchrow("SELECT sla, due FROM tickets WHERE id = $1", int(plain))
    assert row["sla"] in ("", None) and row["due"].year == 1970
