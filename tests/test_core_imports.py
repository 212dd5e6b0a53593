"""The core stays lean: a producer imports and installs ``sse_core`` without the dashboard stack."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "numpy", "panel", "bokeh", "fakeredis", "tornado", "jwt", "prometheus_client")


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in result.stdout.split()}


def test_importing_the_core_pulls_in_no_dashboard_stack() -> None:
    loaded = _imported_after("import sse_core; from sse_core import *")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_http_package_needs_no_web_framework() -> None:
    loaded = _imported_after("import sse_core.http")
    assert loaded.isdisjoint({"tornado", "starlette", "panel", "bokeh", "pandas"})


def test_the_embedded_default_and_the_frames_load_what_they_need() -> None:
    # The checks above are meaningful only if these modules do reach the heavy packages.
    assert "pandas" in _imported_after("import sse_core.frames")
    assert "fakeredis" in _imported_after("import sse_core; sse_core.connect(None)")


def test_the_core_install_declares_no_dashboard_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    stack = ("panel", "bokeh", "pandas", "fakeredis", "tornado")
    assert not [name for name in stack if name in core]
    dashboard = " ".join(project["optional-dependencies"]["dashboard"]).lower()
    assert all(name in dashboard for name in ("panel", "bokeh", "fakeredis"))
