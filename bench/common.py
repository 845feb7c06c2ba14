"""What the benchmarks share: the database they run on."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from sla_monitor.sources.sql import REFERENCE_SCHEMA

HERE = Path(__file__).resolve().parent


@asynccontextmanager
async def helpdesk(given: str | None, generate: list[str] | None) -> AsyncIterator[str]:
    """The DSN of the helpdesk to measure: ``given`` as it is, or else a fresh database made
    through $SLA_MONITOR_BENCH_DSN (an admin DSN; else an embedded PostgreSQL), loaded by
    generate.py with the arguments ``generate`` in a child process (the loader's memory is
    not the benchmark's), or holding only the reference schema; dropped afterwards."""
    if given:
        yield given
        return
    admin_dsn = os.environ.get("SLA_MONITOR_BENCH_DSN")
    server = None
    if admin_dsn is None:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(), cleanup_mode="stop")
        admin_dsn = server.get_uri()
    admin = await asyncpg.connect(admin_dsn)
    name = f"sla_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin_dsn.partition("?")
    dsn = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    try:
        if generate is None:
            conn = await asyncpg.connect(dsn)
            await conn.execute(REFERENCE_SCHEMA)
            await conn.close()
        else:
            subprocess.run([sys.executable, str(HERE / "generate.py"), dsn, *generate], check=True)
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            server.cleanup()
