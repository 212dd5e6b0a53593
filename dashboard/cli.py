"""The ``ssewatch`` command: serve the dashboard, generate demo traffic, mint test tokens."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from sse_core.connection import connect
from sse_core.demo import DemoTraffic
from sse_core.publisher import RedisSSEPublisher
from sse_core.settings import SSESettings


def _demo(args: argparse.Namespace, settings: SSESettings) -> int:
    url = args.redis_url or settings.redis_url
    if url is None:
        print("ssewatch demo needs --redis-url (or SSE_REDIS_URL)", file=sys.stderr)
        return 2

    async def run() -> int:
        client = connect(url)
        publisher = RedisSSEPublisher.from_settings(client, settings)
        traffic = DemoTraffic(publisher, rate=args.rate, seed=args.seed)
        try:
            return await traffic.run(duration=args.duration, max_events=args.max_events)
        finally:
            await client.aclose()

    published = asyncio.run(run())
    print(f"published {published} events to {url}")
    return 0


def _serve(args: argparse.Namespace, settings: SSESettings) -> int:
    from dashboard.server import serve  # imports Panel: only when serving

    auth = {name: getattr(args, name) for name in _AUTH_OPTIONS if getattr(args, name)}
    serve(
        args.redis_url,
        port=args.port,
        address=args.address,
        show=args.show,
        settings=settings,
        auth=auth,
    )
    return 0


# Panel's own login options, passed through unchanged (``panel serve`` users know them); the
# dashboard and GET /events both require the login when one is configured.
_AUTH_OPTIONS = {
    "basic_auth": "require this password (or the passwords in this JSON file) to log in",
    "cookie_secret": "secret that signs login cookies (set it with any login option)",
    "oauth_provider": "OAuth provider name, e.g. github, google, azure, generic",
    "oauth_key": "OAuth client id",
    "oauth_secret": "OAuth client secret",
    "oauth_redirect_uri": "OAuth redirect URI",
    "oauth_encryption_key": "key that encrypts OAuth user info in cookies",
}


def _token(args: argparse.Namespace, settings: SSESettings) -> int:
    from sse_core.http.tokens import TokenSecretMissing, TokenSigner

    try:
        signer = TokenSigner.from_settings(settings)
        token = signer.mint(args.user, args.ttl or settings.token_ttl_seconds)
    except (TokenSecretMissing, ValueError) as exc:
        print(f"ssewatch token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssewatch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="publish realistic demo events to a Redis")
    demo.add_argument("--redis-url", help="Redis URL (default: SSE_REDIS_URL)")
    demo.add_argument("--rate", type=float, default=20.0, help="mean events per second")
    demo.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: forever)"
    )
    demo.add_argument("--max-events", type=int, default=None, help="stop after this many events")
    demo.add_argument("--seed", type=int, default=None, help="random seed for reproducible traffic")
    demo.set_defaults(handler=_demo)

    serve = commands.add_parser("serve", help="run the live dashboard (Panel server) at /")
    serve.add_argument(
        "--redis-url",
        help="Redis URL (default: SSE_REDIS_URL; unset: embedded fakeredis with demo traffic)",
    )
    serve.add_argument("--port", type=int, default=5006, help="port to listen on (default 5006)")
    serve.add_argument("--address", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--show", action="store_true", help="open the dashboard in a browser")
    for name, text in _AUTH_OPTIONS.items():
        serve.add_argument(f"--{name.replace('_', '-')}", dest=name, help=text)
    serve.set_defaults(handler=_serve)

    token = commands.add_parser("token", help="mint a stream token for GET /events (testing)")
    token.add_argument("--user", required=True, help="the user's UUID")
    token.add_argument(
        "--ttl", type=int, default=None, help="seconds valid (default: SSE_TOKEN_TTL_SECONDS)"
    )
    token.set_defaults(handler=_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args, SSESettings())
    return result


if __name__ == "__main__":
    raise SystemExit(main())
