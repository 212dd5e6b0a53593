"""A runnable ASGI app serving ssewatch's ``GET /events`` (Starlette + uvicorn).

    export SSE_TOKEN_SECRET="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    python3 examples/asgi_app.py --port 8000          # embedded Redis + demo traffic
    # in another shell (same SSE_TOKEN_SECRET):
    curl -N -H "Authorization: Bearer $(ssewatch token --user <uuid it prints>)" \
        http://127.0.0.1:8000/events

With ``SSE_REDIS_URL`` set it streams from that Redis instead and publishes nothing itself
(run ``ssewatch demo`` against the same Redis for traffic). The same app is importable as
``examples.asgi_app:app`` for ``uvicorn``; in FastAPI, ``app.router.routes.append(route)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette

from dashboard.demo import DEMO_USERS, DemoTraffic
from sse_core import RedisSSEPublisher, SSESettings, connect
from sse_core.http.asgi import event_route


def build_app(settings: SSESettings, *, demo_rate: float = 5.0) -> Starlette:
    """The app; with no ``redis_url`` it also publishes demo traffic into its embedded Redis."""
    redis = connect(settings.redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        traffic: asyncio.Task[int] | None = None
        if settings.redis_url is None:
            publisher = RedisSSEPublisher(redis, enable_retention=settings.enable_retention)
            traffic = asyncio.create_task(DemoTraffic(publisher, rate=demo_rate, seed=1).run())
        try:
            yield
        finally:
            if traffic is not None:
                traffic.cancel()
                await asyncio.gather(traffic, return_exceptions=True)
            await redis.aclose()

    return Starlette(routes=[event_route(redis, settings)], lifespan=lifespan)


app = build_app(SSESettings())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--rate", type=float, default=5.0, help="demo events per second")
    args = parser.parse_args()
    settings = SSESettings()
    if settings.token_secret is None:
        print("set SSE_TOKEN_SECRET first (see the top of this file)", file=sys.stderr)
        return 2
    if settings.redis_url is None:
        users = ", ".join(f"{name}={uid}" for name, uid in DEMO_USERS.items())
        print(f"embedded Redis with demo traffic for: {users}", flush=True)
    uvicorn.run(build_app(settings, demo_rate=args.rate), host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
