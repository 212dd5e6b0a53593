"""Runtime configuration from the environment (``SSE_*``), validated by pydantic-settings."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SSESettings(BaseSettings):
    """Every tunable in one place; ``SSE_REDIS_URL`` unset means the embedded in-process Redis."""

    model_config = SettingsConfigDict(env_prefix="SSE_", extra="ignore")

    redis_url: str | None = None
    key_prefix: str = "sse"
    enable_retention: bool = True
    retention_max_len: int = Field(default=1000, ge=1)
    retention_ttl_seconds: int = Field(default=3600, ge=1)
    retry_ms: int = Field(default=3000, ge=0)
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    subscriber_queue_size: int = Field(default=1000, ge=1)
    token_secret: SecretStr | None = None
    token_ttl_seconds: int = Field(default=3600, ge=1)
    event_envelope: bool = False
