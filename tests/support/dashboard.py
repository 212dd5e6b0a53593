"""``ssewatch serve`` as a child process on a free port, for browser and HTTP tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


class DashboardProcess:
    """``python -m dashboard.cli serve`` as a child process, stopped by pid.

    ``redis_url=None`` serves the embedded Redis with demo traffic (the README's one line).
    ``env`` adds variables (e.g. ``SSE_TOKEN_SECRET``); the caller's ``SSE_*`` are never
    inherited, so a developer's environment cannot change what a test sees.
    """

    def __init__(
        self, redis_url: str | None, log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        args = [sys.executable, "-m", "dashboard.cli", "serve", "--port", str(self.port)]
        if redis_url is not None:
            args += ["--redis-url", redis_url]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SSE_")}
        child_env.update(env or {})
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=child_env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 75  # a first page on a busy 2-core machine takes ~20 s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dashboard exited early:\n{self.log()}")
            try:
                # A generous timeout: each aborted try would still build a whole session.
                with urllib.request.urlopen(self.url + "/", timeout=60) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dashboard did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
