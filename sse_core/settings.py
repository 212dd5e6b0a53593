"""Runtime configuration from the environment (``SSE_*``), validated by pydantic-settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sse_core.keys import SSEChannelKeys
from sse_core.layouts import KeyLayout, check_layout_name, get_layout

# Algorithms GET /events accepts tokens in (one per deployment; sse_core.http.tokens).
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
PUBLIC_KEY_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA")
TOKEN_ALGORITHMS = HMAC_ALGORITHMS + PUBLIC_KEY_ALGORITHMS

ClusterMode = Literal["auto", "yes", "no"]


class SSESettings(BaseSettings):
    """Every tunable in one place; ``SSE_REDIS_URL`` unset means the embedded in-process Redis."""

    model_config = SettingsConfigDict(env_prefix="SSE_", extra="ignore")

    redis_url: str | None = None
    redis_cluster: ClusterMode = "auto"  # auto: ask the server (INFO cluster) at connect
    key_prefix: str = "sse"
    key_layout: str = "ssewatch"  # or "dashtam": the seed application's keys (sse_core.layouts)
    enable_retention: bool = True
    retention_max_len: int = Field(default=1000, ge=1)
    retention_ttl_seconds: int = Field(default=3600, ge=1)
    retry_ms: int = Field(default=3000, ge=0)
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    subscriber_queue_size: int = Field(default=1000, ge=1)
    subscriber_queue_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    send_timeout_seconds: float = Field(default=30.0, gt=0)
    token_secret: SecretStr | None = None  # HS256 key for GET /events tokens (JWTs)
    token_algorithm: str = "HS256"  # or RS256, ES256, ... with token_public_key
    token_public_key: str | None = None  # PEM text or a path to it (RS*/ES*/PS*/EdDSA)
    token_private_key: SecretStr | None = None  # only for `ssewatch token` with RS*/ES*
    token_leeway_seconds: float = Field(default=0.0, ge=0)  # clock skew allowed on exp/nbf
    token_ttl_seconds: int = Field(default=3600, ge=1)
    event_envelope: bool = False

    @field_validator("key_layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        return check_layout_name(value.strip().lower())

    @field_validator("token_algorithm")
    @classmethod
    def _known_algorithm(cls, value: str) -> str:
        if value not in TOKEN_ALGORITHMS:
            raise ValueError(
                f"unsupported token algorithm {value!r}: valid algorithms are "
                f"{', '.join(TOKEN_ALGORITHMS)} (SSE_TOKEN_ALGORITHM)"
            )
        return value

    def layout(self) -> KeyLayout:
        """The configured key layout (``SSE_KEY_LAYOUT``) under ``SSE_KEY_PREFIX``."""
        return get_layout(self.key_layout, self.key_prefix)

    def channel_keys(self) -> SSEChannelKeys:
        """Key names of the configured layout: what every ``from_settings`` builds on."""
        return self.layout().keys
