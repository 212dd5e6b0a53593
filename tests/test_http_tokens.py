"""Stream tokens: the format, signature and expiry rules, without any server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from sse_core.http import TokenError, TokenSecretMissing, TokenSigner
from sse_core.http.tokens import StreamToken
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


def test_tokens_are_standard_hs256_jwts() -> None:
    token = TokenSigner(SECRET, clock=Clock(1000.0)).mint(USER, 60)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["sub"] == str(USER)
    assert (claims["iat"], claims["exp"]) == (1000, 1060)
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def test_the_applications_own_access_tokens_are_accepted() -> None:
    """The seed's JWTService: HS256, sub = user UUID, plus email, roles, iat, exp, jti."""
    now = int(time.time())
    claims = {
        "sub": str(USER),
        "email": "user@example.com",
        "roles": ["user"],
        "iat": now,
        "exp": now + 900,
        "jti": str(uuid4()),
        "session_id": str(uuid4()),
    }
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert TokenSigner(SECRET).verify(token) == StreamToken(USER, now + 900)


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


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    parts = [json.dumps(header).encode(), json.dumps(claims).encode(), signature]
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)


LATER = 4_000_000_000


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1.abc", "malformed"),
        ("abc.def.ghi", "malformed"),
        ("a" * 9000, "malformed"),
        (jwt.encode({"exp": LATER}, SECRET), "malformed"),  # no sub
        (jwt.encode({"sub": str(USER)}, SECRET), "malformed"),  # no exp
        (jwt.encode({"sub": "alice", "exp": LATER}, SECRET), "malformed"),
        (jwt.encode({"sub": str(USER), "exp": "soon"}, SECRET), "malformed"),
        (jwt.encode({"sub": str(USER), "exp": LATER}, SECRET + "x"), "bad_signature"),
        (jwt.encode({"sub": str(USER), "exp": LATER}, SECRET, algorithm="HS512"), "bad_signature"),
        (
            _unsigned({"alg": "none", "typ": "JWT"}, {"sub": str(USER), "exp": LATER}),
            "bad_signature",
        ),
        (_unsigned({"alg": "None"}, {"sub": str(USER), "exp": LATER}), "bad_signature"),
        (_unsigned({"typ": "JWT"}, {"sub": str(USER), "exp": LATER}), "bad_signature"),
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


def _pem_pair(kind: str) -> tuple[bytes, bytes]:
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


@pytest.mark.parametrize(("algorithm", "kind"), [("RS256", "rsa"), ("ES256", "ec")])
def test_public_key_algorithms_verify_with_the_public_key_only(algorithm: str, kind: str) -> None:
    private_pem, public_pem = _pem_pair(kind)
    now = int(time.time())
    token = jwt.encode({"sub": str(USER), "exp": now + 60}, private_pem, algorithm=algorithm)
    verifier = TokenSigner(algorithm=algorithm, public_key=public_pem.decode())
    assert verifier.verify(token) == StreamToken(USER, now + 60)
    with pytest.raises(TokenSecretMissing, match="private key"):
        verifier.mint(USER, 60)  # minting needs the private key
    signer = TokenSigner(algorithm=algorithm, public_key=public_pem, private_key=private_pem)
    assert verifier.verify(signer.mint(USER, 60)).user_id == USER
    other_private, _ = _pem_pair(kind)
    forged = jwt.encode({"sub": str(USER), "exp": now + 60}, other_private, algorithm=algorithm)
    with pytest.raises(TokenError) as caught:
        verifier.verify(forged)
    assert caught.value.problem == "bad_signature"


def test_algorithm_confusion_hs256_signed_with_the_public_key_is_refused() -> None:
    """The classic attack: the RSA public key is public, so HMAC it and claim HS256."""
    _, public_pem = _pem_pair("rsa")
    verifier = TokenSigner(algorithm="RS256", public_key=public_pem)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": str(USER), "exp": int(time.time()) + 60}
    signing_input = _unsigned(header, claims).rsplit(".", 1)[0]
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(TokenError) as caught:
        verifier.verify(forged)
    assert caught.value.problem == "bad_signature"
    assert "HS256" in str(caught.value)
    # And an HS256 deployment never takes an RS256 token, whoever signed it.
    private_pem, _ = _pem_pair("rsa")
    rs_token = jwt.encode(claims, private_pem, algorithm="RS256")
    with pytest.raises(TokenError, match="RS256"):
        TokenSigner(SECRET).verify(rs_token)


def test_public_key_settings_accept_a_file_path(tmp_path: Any) -> None:
    private_pem, public_pem = _pem_pair("ec")
    path = tmp_path / "public.pem"
    path.write_bytes(public_pem)
    settings = SSESettings(token_algorithm="ES256", token_public_key=str(path))
    token = jwt.encode({"sub": str(USER), "exp": LATER}, private_pem, algorithm="ES256")
    assert TokenSigner.from_settings(settings).verify(token).user_id == USER
    with pytest.raises(TokenSecretMissing, match="SSE_TOKEN_PUBLIC_KEY is not set"):
        TokenSigner.from_settings(SSESettings(token_algorithm="ES256"))
    with pytest.raises(TokenSecretMissing, match="neither PEM text nor a readable file"):
        TokenSigner.from_settings(SSESettings(token_algorithm="ES256", token_public_key="/nope"))
    with pytest.raises(ValueError, match="valid algorithms are HS256"):
        SSESettings(token_algorithm="none")


def test_not_before_and_leeway() -> None:
    clock = Clock(1000.0)
    early = jwt.encode({"sub": str(USER), "exp": 2000, "nbf": 1010}, SECRET)
    with pytest.raises(TokenError, match="not valid yet"):
        TokenSigner(SECRET, clock=clock).verify(early)
    assert TokenSigner(SECRET, clock=clock, leeway_seconds=30).verify(early).user_id == USER
    clock.now = 2005.0
    late = jwt.encode({"sub": str(USER), "exp": 2000}, SECRET)
    assert TokenSigner(SECRET, clock=clock, leeway_seconds=30).verify(late).user_id == USER
