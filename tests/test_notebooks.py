"""The analyst notebooks: committed without outputs, and run top to bottom in a real kernel.

Each notebook runs in a fresh ``python3`` Jupyter kernel twice: on the embedded in-process Redis
(``SSE_REDIS_URL`` unset) and on the session's real redis-server (``SSE_REDIS_URL`` set, under a
key prefix of its own). Notebooks assert their own results in code cells, so a wrong answer
fails here, not only a crash.
"""

from __future__ import annotations

import asyncio
import os
from itertools import pairwise
from pathlib import Path
from uuid import uuid4

import nbformat
import pytest
from nbclient import NotebookClient
from redis.asyncio import Redis

from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 120  # per cell; each notebook takes a few seconds in total
REQUIRED = {
    "01_explore_events.ipynb",
    "02_live_dashboard.ipynb",
    "03_replay_after_outage.ipynb",
}


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def test_the_analyst_notebooks_are_there() -> None:
    assert {p.name for p in NOTEBOOKS} >= REQUIRED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path: Path) -> None:
    """No outputs or execution counts in git: diffs stay readable, no stale results."""
    notebook = _read(path)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    assert "widgets" not in notebook.metadata
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells
    for index, cell in enumerate(code_cells):
        assert cell.outputs == [], f"code cell {index} has outputs"
        assert cell.execution_count is None, f"code cell {index} has an execution count"
        assert "execution" not in cell.metadata, f"code cell {index} has execution timings"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_is_introduced_by_markdown(path: Path) -> None:
    cells = _read(path).cells
    assert cells[0].cell_type == "markdown"
    for before, cell in pairwise(cells):
        if cell.cell_type == "code":
            assert before.cell_type == "markdown", f"unexplained step: {cell.source[:60]!r}"


def _kernel_env(**settings: str) -> dict[str, str]:
    """The test's environment minus any SSE_* of the developer's, plus ``settings``.

    The repo root leads ``PYTHONPATH`` so the kernel imports this checkout's packages even where
    they are not pip-installed (CI installs them editable anyway).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env | settings


def _execute(path: Path, env: dict[str, str]) -> str:
    """Run every cell in a fresh kernel; return the text the notebook printed."""
    notebook = _read(path)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


async def _keys_under(url: str, prefix: str) -> list[bytes]:
    client = Redis.from_url(url)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
    finally:
        await client.aclose()


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_the_embedded_redis(path: Path) -> None:
    printed = _execute(path, _kernel_env())
    assert "Redis: embedded" in printed


@pytest.mark.notebook
@pytest.mark.redis
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_a_real_redis(path: Path, redis_server: RedisServer) -> None:
    prefix = f"nbtest_{uuid4().hex[:8]}"
    printed = _execute(path, _kernel_env(SSE_REDIS_URL=redis_server.url, SSE_KEY_PREFIX=prefix))
    assert f"Redis: redis://127.0.0.1:{redis_server.port}/0" in printed
    # It really used that server: its events are retained there under its prefix.
    assert asyncio.run(_keys_under(redis_server.url, prefix))
