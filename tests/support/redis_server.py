"""A throwaway ``redis-server`` on a free loopback port, for tests and benchmarks.

Stopped by pid; its data directory is a temporary folder. ``restart()`` keeps the port, so
clients see a real server restart (with the dataset kept when ``persist=True``).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(
        self,
        port: int | None = None,
        *,
        persist: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed (Debian: apt-get install redis-server)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.persist = persist
        self.extra_args = extra_args
        self.dir = Path(tempfile.mkdtemp(prefix="ssewatch-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "no",
            "--save",
            "" if not self.persist else "3600 1",
            "--dbfilename",
            "dump.rdb",
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until(lambda: self._ping(), "start")
        return self

    def stop(self, *, save: bool = False) -> None:
        """Stop the server; with ``save`` it writes its dataset first (an orderly restart)."""
        if self.process is None:
            return
        if save:
            self._command(b"SHUTDOWN SAVE\r\n")
        else:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, downtime: float = 0.0) -> None:
        self.stop(save=self.persist)
        time.sleep(downtime)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _ping(self) -> bool:
        try:
            return self._command(b"PING\r\n").startswith(b"+PONG")
        except OSError:
            return False

    def _command(self, raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(raw)
            try:
                return sock.recv(64)
            except OSError:
                return b""

    def _wait_until(self, check: object, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited during {what}; see {self.dir}/redis.log")
            if callable(check) and check():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not {what} within {timeout}s")
