"""The ``ssewatch`` command as a newcomer meets it: help, version, a busy port, a Redis outage."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dashboard.cli import build_parser, main, package_version
from dashboard.demo import DEMO_USERS
from sse_core.settings import SSESettings
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
DEMO_COMMAND = (sys.executable, "-m", "dashboard.cli", "demo")


def help_text(*command: str) -> str:
    parser = build_parser()
    if not command:
        return parser.format_help()
    actions = [a for a in parser._actions if a.dest == "command"]
    return actions[0].choices[command[0]].format_help()  # type: ignore[attr-defined,index]


def test_help_is_plain_text_and_describes_every_command() -> None:
    top = help_text()
    for name in ("serve", "demo", "token"):
        assert re.search(rf"^\s+{name}\s+\S", top, re.MULTILINE), f"{name} has no description"
    for text in (top, help_text("serve"), help_text("demo"), help_text("token")):
        assert "``" not in text
    assert "--version" in top


def test_serve_help_names_the_endpoints_and_every_setting() -> None:
    text = help_text("serve")
    assert "GET /events" in text
    assert "GET /metrics" in text
    assert "SSE_TOKEN_SECRET" in text
    for name, field in SSESettings.model_fields.items():
        line = next(line for line in text.splitlines() if line.startswith(f"  SSE_{name.upper()} "))
        shown = "unset" if field.default is None else str(field.default)
        assert f"[{shown}]" in line
    assert "(default: 5006)" in text


def test_demo_help_shows_the_rate_default() -> None:
    assert "(default: 20.0)" in " ".join(help_text("demo").split())


def test_readme_gives_a_newcomer_a_demo_user_id_for_the_curl_example() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"USER_ID={DEMO_USERS['alice']}" in readme
    assert all(str(user_id) in readme for user_id in DEMO_USERS.values())
    assert all(str(user_id) in help_text("demo") for user_id in DEMO_USERS.values())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ssewatch {package_version()}"
    assert package_version()[0].isdigit()


def test_a_busy_port_is_one_clear_line_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSE_")}
        result = subprocess.run(
            [sys.executable, "-m", "dashboard.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"port {port} is already in use on 127.0.0.1" in result.stderr
    assert "--port" in result.stderr
    # Serving without a token secret is a normal set-up: said as information, not a warning.
    assert "GET /events answers 503 until a token secret is configured" in result.stderr
    assert "WARNING" not in result.stderr


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_demo_reports_an_outage_once_when_it_starts_and_once_when_it_ends(
    own_redis_server: RedisServer, tmp_path: Path
) -> None:
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [*DEMO_COMMAND, "--rate", "200", "--redis-url", own_redis_server.url],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(3)  # publishing (the interpreter and imports take a moment)
            own_redis_server.stop()
            time.sleep(4)  # ~40 failing batches
            own_redis_server.start()
            deadline = time.monotonic() + 30
            while "works again" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            demo.terminate()
            demo.wait(timeout=15)
    text = log_path.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    failed = [line for line in lines if "publishing failed" in line]
    back = [line for line in lines if "publishing works again" in line]
    assert len(failed) == 1, text
    assert len(back) == 1, text
    assert re.search(r"after \d+\.\d s; [1-9]\d* demo events were dropped", back[0]), back[0]
    assert "Traceback" not in text
    assert len(lines) <= 4, text  # the two outage lines (and at most the final summary)
