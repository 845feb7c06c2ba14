"""A loopback TCP proxy in front of the real PostgreSQL that a test can cut and restore,
to play a database outage without stopping a shared server."""

from __future__ import annotations

import asyncio
import contextlib


class OutageProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        """``target_host`` may be a directory holding PostgreSQL's Unix socket."""
        self.target = (target_host, target_port)
        self.up = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Drops every open connection and refuses new ones until restored."""
        self.up = False
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            host, port = self.target
            if host.startswith("/"):
                socket = f"{host}/.s.PGSQL.{port}"
                up_reader, up_writer = await asyncio.open_unix_connection(socket)
            else:
                up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
