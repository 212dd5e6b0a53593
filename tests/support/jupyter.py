"""A throwaway Jupyter server (JupyterLab 4 / Notebook 7) for browser tests and benchmarks.

It listens on a free loopback port with a random token, serves a temporary copy of the
notebooks (so runs never write outputs or checkpoints into the repository), and starts kernels
that import this checkout (``PYTHONPATH``) with none of the developer's ``SSE_*`` settings.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from playwright.async_api import Page, Route

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
START_TIMEOUT_S = 120


class JupyterServer:
    """``python -m jupyterlab`` on 127.0.0.1:<free port>, stopped by pid."""

    def __init__(self, notebooks: Iterable[Path] = (), env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.root = Path(tempfile.mkdtemp(prefix="ssewatch-jupyter-"))
        for path in notebooks:
            shutil.copy(path, self.root / path.name)
        self._env = env
        self._log_path = self.root / ".server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def page(self, notebook: str, ui: str = "lab") -> str:
        """The address of ``notebook`` in JupyterLab (``lab``) or Notebook 7 (``notebooks``).

        ``reset``: JupyterLab would otherwise restore the last page's workspace, with the notebook
        opened before still in a tab (Run All then waited on the wrong notebook's cells).
        """
        if ui == "notebooks":
            return f"{self.url}/notebooks/{notebook}?token={self.token}"
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"

    def kernel_idle(self, notebook: str) -> bool:
        """Whether ``notebook`` has a session whose kernel the server reports idle (any UI)."""
        api = f"{self.url}/api/sessions"
        headers = {"Authorization": f"token {self.token}"}
        with urllib.request.urlopen(urllib.request.Request(api, headers=headers), timeout=30) as r:
            sessions = json.load(r)
        return any(
            s["path"].endswith(notebook) and s["kernel"]["execution_state"] == "idle"
            for s in sessions
        )

    def start(self) -> JupyterServer:
        # No SSE_* of the developer's, and nothing of pytest's (kernels are not under test).
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SSE_", "PYTEST_"))}
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
        base["JUPYTER_CONFIG_DIR"] = str(self.root / ".jupyter-config")  # no user settings
        base["JUPYTERLAB_SETTINGS_DIR"] = str(self.root / ".lab-settings")
        base["JUPYTERLAB_WORKSPACES_DIR"] = str(self.root / ".lab-workspaces")
        base["JUPYTER_RUNTIME_DIR"] = str(self.root / ".runtime")
        args = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.news_url=None",  # no news feed from the internet
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",  # no PyPI look-ups
        ]
        if os.geteuid() == 0:
            args.append("--allow-root")  # CI containers run as root
        log = self._log_path.open("wb")
        self.process = subprocess.Popen(
            args, cwd=self.root, env=base | (self._env or {}), stdout=log, stderr=log
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log()}")
            try:
                status = f"{self.url}/api/status?token={self.token}"
                with urllib.request.urlopen(status, timeout=5):
                    return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter lab did not start:\n{self.log()}")

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")[-6000:]

    def shutdown_kernels(self) -> None:
        """Stop every kernel: a live dashboard left running would load the next notebook's run."""
        api = f"{self.url}/api/kernels"
        headers = {"Authorization": f"token {self.token}"}
        with urllib.request.urlopen(urllib.request.Request(api, headers=headers), timeout=30) as r:
            kernels = json.load(r)
        for kernel in kernels:
            request = urllib.request.Request(
                f"{api}/{kernel['id']}", headers=headers, method="DELETE"
            )
            with urllib.request.urlopen(request, timeout=30):
                pass

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # jupyter shuts its kernels down on SIGTERM
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> JupyterServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


# -- driving a notebook page (Playwright) ----------------------------------------------------

LOCAL_HOSTS = ("127.0.0.1", "localhost")
RUN_ALL = re.compile(r"^Run All Cells$")
KERNEL_IDLE = re.compile(r"\| Idle$")
# One pass over the page's outputs in the browser (a notebook with inline resources holds ~5 MB
# of script text, too much to pull into Python per check). A Bokeh or Panel output, whatever
# renderer drew it, puts its document's root in a [data-root-id] element; the cell calling
# pn.extension() shows Panel's invisible comm root, which draws nothing, so it is left out.
# "drawn" counts what a view put into its shadow roots: canvases, tables, inputs, buttons.
OUTPUTS_JS = """() => {
  const deep = (root, sel) => {
    let n = root.querySelectorAll(sel).length;
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) n += deep(el.shadowRoot, sel);
    return n;
  };
  const out = [];
  for (const cell of document.querySelectorAll('.jp-CodeCell')) {
    const source = cell.querySelector('.jp-InputArea-editor')?.textContent ?? '';
    for (const o of cell.querySelectorAll('.jp-OutputArea-output')) {
      const bokeh = o.querySelector('[data-root-id]') !== null;
      out.push({
        bokeh: bokeh && !source.includes('pn.extension('),
        drawn: bokeh ? deep(o, 'canvas, .tabulator, input, button') : 0,
        stderr: o.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr',
        text: o.querySelector('script') ? '' : o.textContent.slice(0, 2000),
      });
    }
  }
  return out;
}"""


@dataclass
class PageLog:
    """What a page asked of the network and said on its console."""

    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def attach(self, page: Page) -> None:
        """Refuse (and record) every request that would leave this machine."""

        async def route(request_route: Route) -> None:
            url = request_route.request.url
            host = urlsplit(url).hostname or ""
            if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                await request_route.continue_()
            else:
                self.external.append(url)
                await request_route.abort()

        await page.route("**/*", route)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))


async def open_notebook(
    page: Page, jupyter: JupyterServer, notebook: str, ui: str = "lab", timeout_s: float = 180
) -> None:
    """Open ``notebook`` in ``ui`` and wait until its kernel is idle (``timeout_s`` for it all).

    Idle as the server reports it (the same in both UIs), and in JupyterLab also as its status
    bar shows it: the page's own connection to the kernel is up.
    """
    deadline = time.monotonic() + timeout_s

    def left_ms() -> float:
        return max(1.0, deadline - time.monotonic()) * 1000

    await page.goto(jupyter.page(notebook, ui), timeout=left_ms())
    await page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=left_ms())
    if ui == "lab":
        await page.get_by_text(KERNEL_IDLE).first.wait_for(timeout=left_ms())
    while not jupyter.kernel_idle(notebook):
        if time.monotonic() > deadline:
            raise AssertionError(f"the kernel of {notebook} was not idle within {timeout_s} s")
        await asyncio.sleep(0.5)


async def run_all(page: Page, timeout_s: float = 300) -> float:
    """Run > Run All Cells, wait until every code cell has run; return the seconds it took."""
    started = time.monotonic()
    await page.locator("li.lm-MenuBar-item").filter(has_text=re.compile(r"^Run$")).click()
    await page.locator("li.lm-Menu-item .lm-Menu-itemLabel").filter(has_text=RUN_ALL).click()
    deadline = started + timeout_s
    while True:
        # Text content, not inner text: JupyterLab 4 does not lay out cells scrolled off-screen.
        prompts = await page.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()
        if prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise AssertionError(f"Run All did not finish in {timeout_s} s: prompts {prompts}")
        await asyncio.sleep(0.25)


async def dashboard_total(page: Page) -> int | None:
    """The inline dashboard's "Total events" figure, or None if it is not on the page."""
    numbers = await page.locator("[data-stat='total'] .number").all_text_contents()
    digits = numbers[0].replace(",", "").strip() if numbers else ""
    return int(digits) if digits.isdigit() else None
