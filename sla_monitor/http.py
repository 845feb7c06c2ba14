"""The HTTP server: /metrics for Prometheus, /healthz (alive) and /readyz (polling works)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sla_monitor import __version__
from sla_monitor.daemon import Daemon

_INDEX = """<!doctype html><title>sla-monitor</title><h1>sla-monitor {version}</h1>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/healthz">/healthz</a></li>
<li><a href="/readyz">/readyz</a></li></ul>"""


def make_app(daemon: Daemon) -> web.Application:
    async def index(_: web.Request) -> web.Response:
        return web.Response(text=_INDEX.format(version=__version__), content_type="text/html")

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
        channels = daemon.metrics.channel_health
        if daemon.ready:
            return web.json_response(
                {"status": "ready", "tracked": len(daemon.tracker), "channels": channels}
            )
        return web.json_response(
            {
                "status": "not ready",
                "synced": daemon.synced,
                "error": daemon.last_error,
                "channels": channels,
            },
            status=503,
        )

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_http(daemon: Daemon, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(daemon), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
