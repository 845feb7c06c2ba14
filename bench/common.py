"""What the benchmarks share: the database they run on, and the raw read they compare with."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from sla_monitor.config import Settings
from sla_monitor.sources.sql import REFERENCE_SCHEMA

HERE = Path(__file__).resolve().parent


@asynccontextmanager
async def helpdesk(given: str | None, generate: list[str] | None) -> AsyncIterator[str]:
    """The DSN of the helpdesk to measure: ``given`` as it is, or else a fresh database (see
    ``fresh_database``) loaded by generate.py with the arguments ``generate`` in a child
    process (the loader's memory is not the benchmark's), or holding only the reference
    schema; dropped afterwards."""
    if given:
        async with copy_of(given) as copy:
            yield copy
        return
    async with fresh_database() as dsn:
        if generate is None:
            conn = await asyncpg.connect(dsn)
            await conn.execute(REFERENCE_SCHEMA)
            await conn.close()
        else:
            subprocess.run([sys.executable, str(HERE / "generate.py"), dsn, *generate], check=True)
        yield dsn


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The DSN of an empty database made through $SLA_MONITOR_BENCH_DSN (an admin DSN; else an
    embedded PostgreSQL), dropped afterwards."""
    admin_dsn = os.environ.get("SLA_MONITOR_BENCH_DSN")
    server = None
    if admin_dsn is None:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(), cleanup_mode="stop")
        admin_dsn = server.get_uri()
    admin = await asyncpg.connect(admin_dsn)
    name = f"sla_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            server.cleanup()


def with_database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


@asynccontextmanager
async def copy_of(given: str) -> AsyncIterator[str]:
    """A copy of the database at ``given`` (CREATE DATABASE ... TEMPLATE, through the
    server's `postgres` database), dropped afterwards: a benchmark that adds tickets, events
    or the daemon's schema leaves the helpdesk it was given as it found it. The template
    must have no other session while it is copied."""
    source = given.partition("?")[0].rsplit("/", 1)[1]
    admin = await asyncpg.connect(with_database(given, "postgres"))
    name = f"sla_bench_copy_{uuid.uuid4().hex[:8]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        yield with_database(given, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def raw_batched_read(conn: asyncpg.Connection, settings: Settings) -> tuple[float, int, int]:
    """Seconds, bytes and tickets of the raw baseline of a full sync: what the source reads,
    in the same batches, with nothing decoded. ``COPY (open-tickets query) TO STDOUT``, then
    per batch of ``source.batch_size`` of its ticket ids (in the order returned), ``COPY
    (events query) TO STDOUT`` for those ids: the same rows, the same statements per batch.
    Splitting the first column off the ticket rows is the only Python work."""
    resolved = list(settings.statuses.resolved)
    batch = settings.source.batch_size
    chunks: list[bytes] = []
    received = 0

    async def keep(chunk: bytes) -> None:
        chunks.append(chunk)

    async def count(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    events = settings.source.events_query
    began = time.perf_counter()
    await conn.copy_from_query(settings.source.open_tickets_query, resolved, output=keep)
    data = b"".join(chunks)
    received += len(data)
    ids = [line.split(b"\t", 1)[0].decode() for line in data.splitlines()]
    for start in range(0, len(ids), batch):
        await conn.copy_from_query(events, ids[start : start + batch], output=count)
    return time.perf_counter() - began, received, len(ids)
