"""Stream tokens: the format, signature and expiry rules, without any server."""

from __future__ import annotations

import base64
import json
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from sse_core.http import TokenError, TokenSecretMissing, TokenSigner
from sse_core.settings import SSESettings

USER = UUID("5d2f0a3e-9c61-4b1e-8f7a-2a9d5c3e7b10")
SECRET = "k" * 40


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_round_trip_names_the_user_and_expiry() -> None:
    clock = Clock()
    signer = TokenSigner(SECRET, clock=clock)
    token = signer.mint(USER, ttl_seconds=600)
    claims = signer.verify(token)
    assert claims.user_id == USER
    assert claims.expires_at == int(clock.now) + 600


def test_format_is_versioned_urlsafe_and_readable() -> None:
    token = TokenSigner(SECRET, clock=Clock(1000.0)).mint(USER, 60)
    version, payload, signature = token.split(".")
    assert version == "v1"
    assert json.loads(base64.urlsafe_b64decode(payload + "==")) == {"sub": str(USER), "exp": 1060}
    assert len(base64.urlsafe_b64decode(signature + "=")) == 32  # HMAC-SHA256
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def test_expires_exactly_at_exp() -> None:
    clock = Clock()
    signer = TokenSigner(SECRET, clock=clock)
    token = signer.mint(USER, 10)
    clock.now += 9.999
    assert signer.verify(token).user_id == USER
    clock.now += 0.001
    with pytest.raises(TokenError) as caught:
        signer.verify(token)
    assert caught.value.problem == "expired"


def test_changed_payload_is_rejected_even_with_a_valid_signature_elsewhere() -> None:
    signer = TokenSigner(SECRET)
    alice, bob = signer.mint(USER, 60), signer.mint(UUID(int=7), 60)
    swapped = ".".join([*bob.split(".")[:2], alice.split(".")[2]])
    with pytest.raises(TokenError) as caught:
        signer.verify(swapped)
    assert caught.value.problem == "bad_signature"


def test_a_different_secret_cannot_verify() -> None:
    token = TokenSigner("a" * 32).mint(USER, 60)
    with pytest.raises(TokenError) as caught:
        TokenSigner("b" * 32).verify(token)
    assert caught.value.problem == "bad_signature"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1.abc", "malformed"),
        ("v2.abc.def", "malformed"),
        ("v1.abc.d$f", "malformed"),
        ("v1." + "a" * 600 + ".x", "malformed"),
    ],
)
def test_malformed_tokens_name_the_problem(token: str | None, problem: str) -> None:
    with pytest.raises(TokenError) as caught:
        TokenSigner(SECRET).verify(token)
    assert caught.value.problem == problem


@given(st.text(max_size=200))
def test_arbitrary_strings_never_verify_or_crash(garbage: str) -> None:
    with pytest.raises(TokenError):
        TokenSigner(SECRET).verify(garbage)


def test_short_or_missing_secrets_are_refused_with_a_hint() -> None:
    with pytest.raises(TokenSecretMissing, match="at least 32"):
        TokenSigner("short")
    with pytest.raises(TokenSecretMissing, match="SSE_TOKEN_SECRET is not set"):
        TokenSigner.from_settings(SSESettings(token_secret=None))
    signer = TokenSigner.from_settings(SSESettings(token_secret=SecretStr(SECRET)))
    assert signer.verify(signer.mint(USER, 5)).user_id == USER


def test_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSE_TOKEN_SECRET", SECRET)
    token = TokenSigner.from_settings(SSESettings()).mint(USER, 60)
    assert TokenSigner(SECRET).verify(token).user_id == USER


def test_ttl_and_user_are_validated() -> None:
    with pytest.raises(ValueError, match="at least 1 second"):
        TokenSigner(SECRET).mint(USER, 0)
    with pytest.raises(ValueError, match="invalid user id"):
        TokenSigner(SECRET).mint("bob", 60)
