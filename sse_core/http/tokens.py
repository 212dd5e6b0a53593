"""Signed, expiring stream tokens: who may read which user's event stream.

Format (compact, URL-safe, so it also fits ``?token=`` for ``EventSource``)::

    v1.<payload>.<signature>

``payload`` is base64url (no padding) of the JSON ``{"sub": "<user uuid>", "exp": <unix s>}``;
``signature`` is base64url of HMAC-SHA256(secret, ``"v1." + payload``). The version prefix is
signed too, so a future format can never be confused with this one. The signature is checked
in constant time *before* the payload is parsed: nothing unsigned is ever interpreted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from pydantic import SecretStr

from sse_core.ids import parse_user_id
from sse_core.settings import SSESettings

VERSION = "v1"
MIN_SECRET_LENGTH = 32
MAX_TOKEN_LENGTH = 512  # a v1 token is ~130 characters; anything far longer is not ours
SECRET_HINT = 'generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'

TokenProblem = Literal["missing", "malformed", "bad_signature", "expired"]


class TokenError(ValueError):
    """A token that does not authenticate anyone; ``problem`` says why (for a 401 response)."""

    def __init__(self, problem: TokenProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


class TokenSecretMissing(RuntimeError):
    """No usable ``SSE_TOKEN_SECRET``: tokens can be neither minted nor checked."""


@dataclass(frozen=True, slots=True)
class StreamToken:
    """What a verified token says: whose stream it opens, and until when (unix seconds)."""

    user_id: UUID
    expires_at: int


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Mints and verifies tokens with one secret.

    ``clock`` returns unix seconds; tests pass a fake one to check expiry without sleeping.
    """

    def __init__(
        self, secret: str | bytes | SecretStr, *, clock: Callable[[], float] = time.time
    ) -> None:
        if isinstance(secret, SecretStr):
            secret = secret.get_secret_value()
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < MIN_SECRET_LENGTH:
            raise TokenSecretMissing(
                f"SSE_TOKEN_SECRET is too short ({len(key)} bytes); use at least "
                f"{MIN_SECRET_LENGTH} random characters — {SECRET_HINT}"
            )
        self._key = key
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: SSESettings) -> TokenSigner:
        """The signer for ``SSE_TOKEN_SECRET``; :class:`TokenSecretMissing` if it is unset."""
        if settings.token_secret is None or not settings.token_secret.get_secret_value():
            raise TokenSecretMissing(f"SSE_TOKEN_SECRET is not set; {SECRET_HINT}")
        return cls(settings.token_secret)

    def _sign(self, signed_part: str) -> bytes:
        return hmac.new(self._key, signed_part.encode("ascii"), hashlib.sha256).digest()

    def mint(self, user_id: UUID | str, ttl_seconds: int) -> str:
        """A token for ``user_id`` valid for ``ttl_seconds`` from now."""
        if ttl_seconds < 1:
            raise ValueError(f"token ttl must be at least 1 second, got {ttl_seconds}")
        claims = {"sub": str(parse_user_id(user_id)), "exp": int(self._clock()) + ttl_seconds}
        payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        signed_part = f"{VERSION}.{payload}"
        return f"{signed_part}.{_b64encode(self._sign(signed_part))}"

    def verify(self, token: str | None) -> StreamToken:
        """The token's claims, or :class:`TokenError` if it is missing, forged or expired."""
        if not token:
            raise TokenError("missing", "no token: send 'Authorization: Bearer <token>'")
        parts = token.split(".")
        if len(token) > MAX_TOKEN_LENGTH or len(parts) != 3 or parts[0] != VERSION:
            raise TokenError("malformed", f"malformed token: expected {VERSION}.<payload>.<sig>")
        version, payload, signature = parts
        try:
            given = _b64decode(signature)
        except (binascii.Error, ValueError):
            raise TokenError("malformed", "malformed token signature") from None
        if not hmac.compare_digest(given, self._sign(f"{version}.{payload}")):
            raise TokenError("bad_signature", "token signature does not match")
        try:
            claims = json.loads(_b64decode(payload))
            user_id = UUID(claims["sub"])
            expires_at = int(claims["exp"])
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
            # Only reachable with the secret: a bug in whoever minted it, not an attack.
            raise TokenError("malformed", "token payload is not valid") from None
        if self._clock() >= expires_at:
            raise TokenError("expired", "token expired")
        return StreamToken(user_id, expires_at)
