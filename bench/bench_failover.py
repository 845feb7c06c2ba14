"""Failover of an active/standby pair: two real `sla-monitor run` processes on one state
database, tickets breaching every ``--every`` seconds, the leader SIGKILLed ``--kills``
times at random instants (restarted as the standby each time). For each kill: seconds until
the standby's /readyz says leader, and until the first page after the kill arrives at the
webhook. At the end: breaches paged, lost, and keys paged twice.

Run from the checkout root: PYTHONPATH=. python bench/bench_failover.py [--kills N]
[--open M] (M open tickets loaded by generate.py first: the standby's tracker, re-judged and
recorded at each takeover).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
from common import helpdesk

from tests.integration.replicas import (
    Receiver,
    Replica,
    breaching_tickets,
    pending,
    replica_config,
    synced,
    wait_for,
)


async def bench(
    dsn: str, kills: int, every: float, seed: int, sync_timeout: float, reconcile: str
) -> None:
    conn = await asyncpg.connect(dsn)
    receiver = Receiver()
    await receiver.start()
    folder = Path(tempfile.mkdtemp(prefix="sla-failover-"))
    config = replica_config(
        folder / "sla-monitor.toml", f"{receiver.url}/webhook", reconcile=reconcile
    )
    replicas = [Replica(n, dsn, config, folder / f"{n}.log") for n in ("a", "b")]
    rng = random.Random(seed)
    to_role, to_page = [], []
    try:
        started = time.monotonic()
        for replica in replicas:
            replica.start()
        await wait_for(lambda: synced(conn), "the first watermark", sync_timeout)
        print(f"first start synced in {time.monotonic() - started:.1f} s")
        span = kills * 9.0
        tickets = await breaching_tickets(conn, int(span / every), start_in=2, every=every)
        for _ in range(kills):
            leader: list[Replica] = []

            def one_leader(found: list[Replica] = leader) -> bool:
                found[:] = [r for r in replicas if r.role() == "leader"]
                return len(found) == 1

            await wait_for(one_leader, "one leader", sync_timeout)
            standby = next(r for r in replicas if r is not leader[0])
            await wait_for(lambda s=standby: s.role() == "standby", "a ready standby", sync_timeout)
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            killed = time.monotonic()
            await asyncio.to_thread(leader[0].kill)
            took = await wait_for(lambda s=standby: s.role() == "leader", "takeover", 60, 0.02)
            to_role.append(took)

            def paged_since(at: float = killed) -> bool:
                return any(when > at for _, when, _ in receiver.deliveries)

            await wait_for(paged_since, "a page after the kill", 60, 0.02)
            first = min(when for _, when, _ in receiver.deliveries if when > killed)
            to_page.append(first - killed)
            print(f"kill {len(to_role)}: leader after {took:.2f} s, first page {to_page[-1]:.2f} s")
            leader[0].start()

        async def all_paged() -> bool:
            return receiver.tickets() >= set(tickets) and await pending(conn) == 0

        try:
            await wait_for(all_paged, "every breach paged", 120)
        except AssertionError:
            print("not every breach was paged within 120 s")
    finally:
        for replica in replicas:
            replica.stop()
        await receiver.stop()
        await conn.close()
    triggers = receiver.triggers()
    lost = set(tickets) - receiver.tickets()
    twice = sum(1 for n in triggers.values() if n > 1)
    print()
    print(f"kills: {kills}; breaches: {len(tickets)}, one every {every} s")
    for name, values in (("standby leading", to_role), ("first page after kill", to_page)):
        print(
            f"{name}: median {statistics.median(values):.2f} s, max {max(values):.2f} s "
            f"(target <= 10 s: {'met' if max(values) <= 10 else 'MISSED'})"
        )
    print(f"lost: {len(lost)}; keys paged twice: {twice}; POSTs: {len(receiver.deliveries)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--open", type=int, default=0, help="open tickets to load first")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument(
        "--sync-timeout",
        type=float,
        default=600,
        help="seconds to wait for a first sync (a restarted replica's too); 1 M open: 3600",
    )
    parser.add_argument(
        "--reconcile",
        default="5s",
        help="the replicas' source.reconcile_interval (5s; at 1 M open use the default, 10m: "
        "each reconciliation reads every open ticket's id)",
    )
    args = parser.parse_args()

    async def run() -> None:
        generate = None
        if args.open:
            generate = ["--total", str(args.open), "--open", str(args.open)]
        async with helpdesk(None, generate) as dsn:
            await bench(dsn, args.kills, args.every, args.seed, args.sync_timeout, args.reconcile)

    asyncio.run(run())


if __name__ == "__main__":
    main()
