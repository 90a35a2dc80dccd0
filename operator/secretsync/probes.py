"""The probe endpoints: /healthz (liveness) and /readyz (readiness).

/healthz answers while the process's event loop runs: a replica whose loop is stuck is
restarted. It also names the replica's role (active, standby, starting), so a standby
says that it stands by. /readyz answers 200 only when the replica can do its work (see
engine/health.py) and 503 with the failing check otherwise; both bodies are JSON and
name no secret.
"""

from __future__ import annotations

from aiohttp import web

from secretsync.engine.health import Health


def application(health: Health) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        # An active replica whose engine died is restarted: standing by for ever as
        # "active" would keep the peering from handing the work to another replica.
        engine = health.engine
        problem = engine.problem() if engine is not None else None
        body: dict[str, object] = {"alive": problem is None, "role": health.role}
        if problem is not None:
            body["problem"] = problem
        return web.json_response(body, status=200 if problem is None else 500)

    async def readyz(_: web.Request) -> web.Response:
        report = await health.readiness()
        return web.json_response(report.as_json(), status=200 if report.ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start(health: Health, *, port: int, host: str = "0.0.0.0") -> web.AppRunner:  # noqa: S104 - the kubelet probes from outside the Pod
    """Serve the probes until `stop`; raises OSError if the port is taken."""
    runner = web.AppRunner(application(health), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner


async def stop(runner: web.AppRunner) -> None:
    await runner.cleanup()
