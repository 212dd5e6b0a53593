"""The ssewatch command: serve the dashboard, generate demo traffic, mint test tokens."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from pydantic import ValidationError

from dashboard.demo import DEMO_USERS, DemoTraffic
from sse_core import RedisSSEPublisher, SSESettings, connect

DEFAULT_RATE = 20.0
DEFAULT_PORT = 5006
DEFAULT_ADDRESS = "127.0.0.1"

DESCRIPTION = (
    "Watch and replay per-user Server-Sent-Event streams kept in Redis: a live dashboard, "
    "an SSE endpoint for browsers, and realistic demo traffic."
)
SERVE_DESCRIPTION = """\
Run the live dashboard at / and, on the same port, the SSE endpoint GET /events (a
text/event-stream for browsers' EventSource, resumable with Last-Event-ID) and GET /metrics
(Prometheus text format). Without --redis-url or SSE_REDIS_URL it runs on an embedded
in-process Redis with demo traffic.

GET /events needs SSE_TOKEN_SECRET (a long random string) to verify stream tokens; without it
the dashboard works and /events answers 503. Mint a test token with 'ssewatch token'."""
DEMO_DESCRIPTION = """\
Publish realistic demo events (syncs, imports, AI chats, portfolio moves, security alerts,
with bursts and failures) for four demo users to a Redis, with retention, until stopped.
A Redis outage is reported once when it starts and once when it ends.

The demo users (the same ids every time):
""" + "\n".join(f"  {name:<6} {user_id}" for name, user_id in DEMO_USERS.items())
TOKEN_DESCRIPTION = """\
Print a signed stream token for GET /events (for testing: your application mints its own).
Needs SSE_TOKEN_SECRET, the same secret the server uses."""


def configure_logging() -> None:
    """Our own modules' messages (information and up) on stderr; Bokeh and Tornado keep theirs.

    Records still propagate to the root logger (whose handler this adds only if nobody has
    configured logging yet), so a host application's or pytest's handlers see them too.
    """
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for name in ("dashboard", "sse_core", "ssewatch"):
        logging.getLogger(name).setLevel(logging.INFO)


def package_version() -> str:
    try:
        return version("ssewatch")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


def settings_help() -> str:
    """Every ``SSE_*`` variable with its default, generated from :class:`SSESettings`."""
    lines = ["settings (environment variables; defaults in brackets):"]
    for name, field in SSESettings.model_fields.items():
        default = "unset" if field.default is None else field.default
        lines.append(f"  SSE_{name.upper():<26} [{default}]")
    return "\n".join(lines)


def _demo(args: argparse.Namespace, settings: SSESettings) -> int:
    url = args.redis_url or settings.redis_url
    if url is None:
        print("ssewatch demo: needs --redis-url (or SSE_REDIS_URL)", file=sys.stderr)
        return 2
    # DemoTraffic reports an outage once when it starts and once when it ends; the
    # publisher's own warning (with a traceback per failed batch) would repeat it thousands
    # of times, so only its errors get through.
    quiet = logging.getLogger("ssewatch.demo.publisher")
    quiet.setLevel(logging.ERROR)

    async def run() -> int:
        client = connect(url, cluster=settings.redis_cluster)
        publisher = RedisSSEPublisher.from_settings(client, settings, logger=quiet)
        traffic = DemoTraffic(publisher, rate=args.rate, seed=args.seed)
        try:
            return await traffic.run(duration=args.duration, max_events=args.max_events)
        finally:
            await client.aclose()

    try:
        published = asyncio.run(run())
    except KeyboardInterrupt:
        return 130
    print(f"published {published} events to {url}")
    return 0


def _serve(args: argparse.Namespace, settings: SSESettings) -> int:
    from dashboard.server import CannotListen, serve  # imports Panel: only when serving

    auth = {name: getattr(args, name) for name in _AUTH_OPTIONS if getattr(args, name)}
    try:
        serve(
            args.redis_url,
            port=args.port,
            address=args.address,
            show=args.show,
            settings=settings,
            auth=auth,
        )
    except CannotListen as exc:
        print(f"ssewatch serve: {exc}", file=sys.stderr)
        return 2
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
    from sse_core.http import TokenSecretMissing, TokenSigner

    try:
        signer = TokenSigner.from_settings(settings)
        token = signer.mint(args.user, args.ttl or settings.token_ttl_seconds)
    except (TokenSecretMissing, ValueError) as exc:
        print(f"ssewatch token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="ssewatch", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"ssewatch {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the live dashboard at /, GET /events and GET /metrics",
        description=SERVE_DESCRIPTION,
        epilog=settings_help(),
        formatter_class=formatter,
    )
    serve.add_argument(
        "--redis-url",
        help="Redis URL (default: SSE_REDIS_URL; unset: embedded Redis with demo traffic)",
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--address", default=DEFAULT_ADDRESS, help="address to listen on (default: %(default)s)"
    )
    serve.add_argument("--show", action="store_true", help="open the dashboard in a browser")
    for name, text in _AUTH_OPTIONS.items():
        serve.add_argument(f"--{name.replace('_', '-')}", dest=name, help=text)
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo",
        help="publish realistic demo events to a Redis",
        description=DEMO_DESCRIPTION,
        formatter_class=formatter,
    )
    demo.add_argument("--redis-url", help="Redis URL (default: SSE_REDIS_URL)")
    demo.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help="mean events per second (default: %(default)s)",
    )
    demo.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: until stopped)"
    )
    demo.add_argument(
        "--max-events", type=int, default=None, help="stop after this many events (default: none)"
    )
    demo.add_argument("--seed", type=int, default=None, help="random seed for reproducible traffic")
    demo.set_defaults(handler=_demo)

    token = commands.add_parser(
        "token",
        help="mint a stream token for GET /events (testing)",
        description=TOKEN_DESCRIPTION,
        formatter_class=formatter,
    )
    token.add_argument("--user", required=True, help="the user's UUID")
    token.add_argument(
        "--ttl", type=int, default=None, help="seconds valid (default: SSE_TOKEN_TTL_SECONDS)"
    )
    token.set_defaults(handler=_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    handler = args.handler
    try:
        settings = SSESettings()
    except ValidationError as exc:  # e.g. an unknown SSE_KEY_LAYOUT: say which, and what is valid
        problems = "; ".join(
            f"SSE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"ssewatch: invalid settings: {problems}", file=sys.stderr)
        return 2
    result: int = handler(args, settings)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
