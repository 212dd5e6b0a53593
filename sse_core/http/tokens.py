"""Stream tokens are standard JWTs: who may read which user's event stream, and until when.

Verified with PyJWT, so an application's own access tokens work unchanged (the seed mints
HS256 JWTs with ``sub`` = the user's UUID): HS256 with ``SSE_TOKEN_SECRET`` by default, or an
asymmetric algorithm (RS256, ES256, ...) with ``SSE_TOKEN_PUBLIC_KEY``. The user is ``sub``;
``exp`` is required and enforced. Exactly one algorithm is accepted per signer, so a token
claiming another one (``none``, or HS256 "signed" with an RSA public key: algorithm confusion)
is refused before its signature is even looked at.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import jwt
from pydantic import SecretStr

from sse_core.codec import as_text
from sse_core.ids import parse_user_id
from sse_core.settings import HMAC_ALGORITHMS, TOKEN_ALGORITHMS, SSESettings

MIN_SECRET_LENGTH = 32
MAX_TOKEN_LENGTH = 8192  # an RS256 JWT with a few claims is ~700 characters
SECRET_HINT = 'generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'

TokenProblem = Literal["missing", "malformed", "bad_signature", "expired"]
Key = str | bytes | SecretStr


class TokenError(ValueError):
    """A token that does not authenticate anyone; ``problem`` says why (for a 401 response)."""

    def __init__(self, problem: TokenProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


class TokenSecretMissing(RuntimeError):
    """No usable key (``SSE_TOKEN_SECRET`` / ``SSE_TOKEN_PUBLIC_KEY``): tokens cannot be checked."""


@dataclass(frozen=True, slots=True)
class StreamToken:
    """What a verified token says: whose stream it opens, and until when (unix seconds)."""

    user_id: UUID
    expires_at: int


def _reveal(key: Key) -> str | bytes:
    return key.get_secret_value() if isinstance(key, SecretStr) else key


def _pem(key: Key, name: str) -> str | bytes:
    """PEM text as given, or read from the file a value names (keys usually live in files)."""
    value = _reveal(key)
    text = as_text(value)
    if "-----BEGIN" in text:
        return value
    path = Path(text.strip()).expanduser()
    if not path.is_file():
        raise TokenSecretMissing(f"{name} is neither PEM text nor a readable file: {path}")
    return path.read_bytes()


class TokenSigner:
    """Verifies (and, with the signing key, mints) JWTs of one algorithm.

    ``clock`` returns unix seconds; ``exp`` and ``nbf`` are checked against it (tests pass a
    fake one to check expiry without sleeping).
    """

    def __init__(
        self,
        secret: Key | None = None,
        *,
        algorithm: str = "HS256",
        public_key: Key | None = None,
        private_key: Key | None = None,
        clock: Callable[[], float] = time.time,
        leeway_seconds: float = 0.0,
    ) -> None:
        if algorithm not in TOKEN_ALGORITHMS:
            raise ValueError(
                f"unsupported token algorithm {algorithm!r}: valid algorithms are "
                f"{', '.join(TOKEN_ALGORITHMS)} (SSE_TOKEN_ALGORITHM)"
            )
        self.algorithm = algorithm
        self._clock = clock
        self._leeway = leeway_seconds
        if algorithm in HMAC_ALGORITHMS:
            if secret is None or not _reveal(secret):
                raise TokenSecretMissing(f"SSE_TOKEN_SECRET is not set; {SECRET_HINT}")
            raw = _reveal(secret)
            key = raw.encode() if isinstance(raw, str) else raw
            if len(key) < MIN_SECRET_LENGTH:
                raise TokenSecretMissing(
                    f"SSE_TOKEN_SECRET is too short ({len(key)} bytes); use at least "
                    f"{MIN_SECRET_LENGTH} random characters — {SECRET_HINT}"
                )
            self._verify_key: Any = key
            self._signing_key: Any = key
            return
        if public_key is None or not _reveal(public_key):
            raise TokenSecretMissing(
                f"SSE_TOKEN_PUBLIC_KEY is not set (SSE_TOKEN_ALGORITHM={algorithm}): give the "
                "PEM public key that verifies your application's tokens, or a path to it"
            )
        implementation = jwt.get_algorithm_by_name(algorithm)
        try:
            self._verify_key = implementation.prepare_key(_pem(public_key, "SSE_TOKEN_PUBLIC_KEY"))
            self._signing_key = (
                implementation.prepare_key(_pem(private_key, "SSE_TOKEN_PRIVATE_KEY"))
                if private_key is not None
                else None
            )
        except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise TokenSecretMissing(f"the {algorithm} key cannot be used: {exc}") from None

    @classmethod
    def from_settings(cls, settings: SSESettings) -> TokenSigner:
        """The signer for ``SSE_TOKEN_*``; :class:`TokenSecretMissing` if its key is unset."""
        return cls(
            settings.token_secret,
            algorithm=settings.token_algorithm,
            public_key=settings.token_public_key,
            private_key=settings.token_private_key,
            leeway_seconds=settings.token_leeway_seconds,
        )

    def mint(self, user_id: UUID | str, ttl_seconds: int) -> str:
        """A JWT for ``user_id`` valid for ``ttl_seconds`` from now (``sub``, ``iat``, ``exp``)."""
        if ttl_seconds < 1:
            raise ValueError(f"token ttl must be at least 1 second, got {ttl_seconds}")
        if self._signing_key is None:
            raise TokenSecretMissing(
                f"minting {self.algorithm} tokens needs the private key (SSE_TOKEN_PRIVATE_KEY); "
                "verifying needs only the public key"
            )
        now = int(self._clock())
        claims = {
            "sub": str(parse_user_id(user_id)),
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm)

    def verify(self, token: str | None) -> StreamToken:
        """The token's user and expiry, or :class:`TokenError` if missing, forged or expired."""
        if not token:
            raise TokenError("missing", "no token: send 'Authorization: Bearer <token>'")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("malformed", f"malformed token: longer than {MAX_TOKEN_LENGTH}")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenError("malformed", "malformed token: expected a JWT") from None
        if header.get("alg") != self.algorithm:
            raise TokenError(
                "bad_signature",
                f"token algorithm {str(header.get('alg'))[:20]!r} is not accepted "
                f"(expected {self.algorithm})",
            )
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                # exp/nbf are checked below against our clock; iat is informative only.
                options={
                    "require": ["sub", "exp"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise TokenError("bad_signature", "token signature does not match") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError("malformed", f"token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise TokenError("malformed", "malformed token") from None
        try:
            user_id = UUID(str(claims["sub"]))
            expires_at = int(claims["exp"])
            not_before = float(claims.get("nbf", 0))
        except (ValueError, TypeError, OverflowError):
            raise TokenError("malformed", "token 'sub' must be a user UUID, 'exp' a time") from None
        now = self._clock()
        if now >= expires_at + self._leeway:
            raise TokenError("expired", "token expired")
        if now + self._leeway < not_before:
            raise TokenError("expired", "token not valid yet (nbf)")
        return StreamToken(user_id, expires_at)
