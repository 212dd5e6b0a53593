"""``ssewatch token``: mints what the endpoint accepts, and refuses clearly without a secret."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from uuid import UUID

import jwt
import pytest

from dashboard.cli import main
from sse_core.http import TokenSigner

USER = "3f6c1d2e-8b4a-4f0e-9d7c-1a2b3c4d5e6f"
SECRET = "s" * 48


def test_token_names_the_user_and_honours_ttl(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSE_TOKEN_SECRET", SECRET)
    assert main(["token", "--user", USER, "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    claims = TokenSigner(SECRET).verify(token)
    assert claims.user_id == UUID(USER)
    assert 110 <= claims.expires_at - time.time() <= 120
    # A standard HS256 JWT: any JWT library (and the application) reads it.
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["sub"] == USER


def test_an_unknown_key_layout_is_named_with_the_valid_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSE_TOKEN_SECRET", SECRET)
    monkeypatch.setenv("SSE_KEY_LAYOUT", "seed")
    assert main(["token", "--user", USER]) == 2
    err = capsys.readouterr().err
    assert "SSE_KEY_LAYOUT" in err
    assert "valid layouts are ssewatch, dashtam" in err


def test_default_ttl_comes_from_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSE_TOKEN_SECRET", SECRET)
    monkeypatch.setenv("SSE_TOKEN_TTL_SECONDS", "7200")
    assert main(["token", "--user", USER]) == 0
    claims = TokenSigner(SECRET).verify(capsys.readouterr().out.strip())
    assert 7190 <= claims.expires_at - time.time() <= 7200


def test_without_a_secret_it_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SSE_TOKEN_SECRET", raising=False)
    assert main(["token", "--user", USER]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "SSE_TOKEN_SECRET is not set" in captured.err
    assert "secrets.token_urlsafe" in captured.err


def test_a_bad_user_id_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSE_TOKEN_SECRET", SECRET)
    assert main(["token", "--user", "alice"]) == 2
    assert "invalid user id 'alice'" in capsys.readouterr().err


def test_the_installed_console_script() -> None:
    script = shutil.which("ssewatch")
    assert script is not None, "the ssewatch console script is not installed"
    env = {**os.environ, "SSE_TOKEN_SECRET": SECRET}
    done = subprocess.run(
        [script, "token", "--user", USER], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert TokenSigner(SECRET).verify(done.stdout.strip()).user_id == UUID(USER)
