"""The catalogue of event types: one place maps each type to its category and severity.

Type names follow ``{category}.{resource}.{action}``; adding a type means adding one
enum member and one registry row, and a test checks that no member lacks a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sse_core.categories import SSEEventCategory


class SSEEventType(StrEnum):
    """Every event type the system publishes."""

    SYNC_ACCOUNTS_STARTED = "sync.accounts.started"
    SYNC_ACCOUNTS_COMPLETED = "sync.accounts.completed"
    SYNC_ACCOUNTS_FAILED = "sync.accounts.failed"
    SYNC_TRANSACTIONS_STARTED = "sync.transactions.started"
    SYNC_TRANSACTIONS_COMPLETED = "sync.transactions.completed"
    SYNC_TRANSACTIONS_FAILED = "sync.transactions.failed"
    SYNC_HOLDINGS_STARTED = "sync.holdings.started"
    SYNC_HOLDINGS_COMPLETED = "sync.holdings.completed"
    SYNC_HOLDINGS_FAILED = "sync.holdings.failed"
    PROVIDER_TOKEN_EXPIRING = "provider.token.expiring"
    PROVIDER_TOKEN_REFRESHED = "provider.token.refreshed"
    PROVIDER_TOKEN_FAILED = "provider.token.failed"
    PROVIDER_DISCONNECTED = "provider.disconnected"
    AI_RESPONSE_CHUNK = "ai.response.chunk"
    AI_TOOL_EXECUTING = "ai.tool.executing"
    AI_RESPONSE_COMPLETE = "ai.response.complete"
    IMPORT_STARTED = "import.started"
    IMPORT_PROGRESS = "import.progress"
    IMPORT_COMPLETED = "import.completed"
    IMPORT_FAILED = "import.failed"
    PORTFOLIO_BALANCE_UPDATED = "portfolio.balance.updated"
    PORTFOLIO_HOLDINGS_UPDATED = "portfolio.holdings.updated"
    PORTFOLIO_NETWORTH_UPDATED = "portfolio.networth.updated"
    SECURITY_SESSION_NEW = "security.session.new"
    SECURITY_SESSION_SUSPICIOUS = "security.session.suspicious"
    SECURITY_SESSION_EXPIRING = "security.session.expiring"
    SECURITY_SESSION_REVOKED = "security.session.revoked"
    SECURITY_PASSWORD_CHANGED = "security.password.changed"
    SECURITY_LOGIN_FAILED = "security.login.failed"


class Severity(StrEnum):
    """How much an event type needs an operator's eye (log levels, as in Grafana's logs)."""

    INFO = "info"
    WARNING = "warning"  # something will need attention soon (a token or session expiring)
    FAILURE = "failure"  # something went wrong: a failed sync/import/refresh, a suspicious login


@dataclass(frozen=True, slots=True)
class EventTypeInfo:
    """What a type means, which payload fields its producers send, and its severity."""

    category: SSEEventCategory
    description: str
    payload_fields: tuple[str, ...]
    severity: Severity = Severity.INFO


_T = SSEEventType
_C = SSEEventCategory
_WARN = Severity.WARNING
_FAIL = Severity.FAILURE

EVENT_REGISTRY: dict[SSEEventType, EventTypeInfo] = {
    _T.SYNC_ACCOUNTS_STARTED: EventTypeInfo(
        _C.DATA_SYNC, "Account sync started", ("connection_id",)
    ),
    _T.SYNC_ACCOUNTS_COMPLETED: EventTypeInfo(
        _C.DATA_SYNC, "Account sync finished", ("connection_id", "account_count")
    ),
    _T.SYNC_ACCOUNTS_FAILED: EventTypeInfo(
        _C.DATA_SYNC, "Account sync failed", ("connection_id", "error"), _FAIL
    ),
    _T.SYNC_TRANSACTIONS_STARTED: EventTypeInfo(
        _C.DATA_SYNC, "Transaction sync started", ("connection_id", "account_id")
    ),
    _T.SYNC_TRANSACTIONS_COMPLETED: EventTypeInfo(
        _C.DATA_SYNC,
        "Transaction sync finished",
        ("connection_id", "account_id", "transaction_count"),
    ),
    _T.SYNC_TRANSACTIONS_FAILED: EventTypeInfo(
        _C.DATA_SYNC, "Transaction sync failed", ("connection_id", "account_id", "error"), _FAIL
    ),
    _T.SYNC_HOLDINGS_STARTED: EventTypeInfo(
        _C.DATA_SYNC, "Holdings sync started", ("connection_id", "account_id")
    ),
    _T.SYNC_HOLDINGS_COMPLETED: EventTypeInfo(
        _C.DATA_SYNC, "Holdings sync finished", ("connection_id", "account_id", "holding_count")
    ),
    _T.SYNC_HOLDINGS_FAILED: EventTypeInfo(
        _C.DATA_SYNC, "Holdings sync failed", ("connection_id", "account_id", "error"), _FAIL
    ),
    _T.PROVIDER_TOKEN_EXPIRING: EventTypeInfo(
        _C.PROVIDER, "Provider token expires soon", ("provider", "expires_in_seconds"), _WARN
    ),
    _T.PROVIDER_TOKEN_REFRESHED: EventTypeInfo(
        _C.PROVIDER, "Provider token refreshed", ("provider",)
    ),
    _T.PROVIDER_TOKEN_FAILED: EventTypeInfo(
        _C.PROVIDER, "Provider token refresh failed", ("provider", "error"), _FAIL
    ),
    _T.PROVIDER_DISCONNECTED: EventTypeInfo(
        _C.PROVIDER, "Provider connection lost", ("provider", "reason"), _FAIL
    ),
    _T.AI_RESPONSE_CHUNK: EventTypeInfo(
        _C.AI, "A streamed piece of an assistant answer", ("conversation_id", "chunk", "index")
    ),
    _T.AI_TOOL_EXECUTING: EventTypeInfo(
        _C.AI, "The assistant is running a tool", ("conversation_id", "tool")
    ),
    _T.AI_RESPONSE_COMPLETE: EventTypeInfo(
        _C.AI, "Assistant answer finished", ("conversation_id", "tokens")
    ),
    _T.IMPORT_STARTED: EventTypeInfo(_C.IMPORT, "File import started", ("import_id", "file_name")),
    _T.IMPORT_PROGRESS: EventTypeInfo(
        _C.IMPORT, "File import progress", ("import_id", "percent", "rows_processed")
    ),
    _T.IMPORT_COMPLETED: EventTypeInfo(
        _C.IMPORT, "File import finished", ("import_id", "rows_imported")
    ),
    _T.IMPORT_FAILED: EventTypeInfo(_C.IMPORT, "File import failed", ("import_id", "error"), _FAIL),
    _T.PORTFOLIO_BALANCE_UPDATED: EventTypeInfo(
        _C.PORTFOLIO, "Account balance changed", ("account_id", "balance", "delta", "currency")
    ),
    _T.PORTFOLIO_HOLDINGS_UPDATED: EventTypeInfo(
        _C.PORTFOLIO, "Holdings changed", ("account_id", "holding_count")
    ),
    _T.PORTFOLIO_NETWORTH_UPDATED: EventTypeInfo(
        _C.PORTFOLIO, "Net worth recalculated", ("net_worth", "delta", "currency")
    ),
    _T.SECURITY_SESSION_NEW: EventTypeInfo(
        _C.SECURITY, "New login session", ("session_id", "ip", "device")
    ),
    _T.SECURITY_SESSION_SUSPICIOUS: EventTypeInfo(
        _C.SECURITY, "Session flagged as suspicious", ("session_id", "ip", "reason"), _FAIL
    ),
    _T.SECURITY_SESSION_EXPIRING: EventTypeInfo(
        _C.SECURITY, "Session expires soon", ("session_id", "expires_in_seconds"), _WARN
    ),
    _T.SECURITY_SESSION_REVOKED: EventTypeInfo(
        _C.SECURITY, "Session revoked", ("session_id", "reason"), _WARN
    ),
    _T.SECURITY_PASSWORD_CHANGED: EventTypeInfo(_C.SECURITY, "Password changed", ("ip",)),
    _T.SECURITY_LOGIN_FAILED: EventTypeInfo(
        _C.SECURITY, "Failed login attempt", ("ip", "attempts"), _FAIL
    ),
}


FAILURE_TYPES: frozenset[SSEEventType] = frozenset(
    t for t, info in EVENT_REGISTRY.items() if info.severity is Severity.FAILURE
)


def severity_of(event_type: SSEEventType | str) -> Severity:
    """A type's severity; an unknown type raises ``ValueError`` listing the valid ones."""
    return EVENT_REGISTRY[parse_event_type(event_type)].severity


def get_category_for_event_type(event_type: SSEEventType | str) -> SSEEventCategory:
    """Look a type's category up; an unknown type raises ``ValueError`` listing the valid ones."""
    return EVENT_REGISTRY[parse_event_type(event_type)].category


def parse_event_type(value: SSEEventType | str) -> SSEEventType:
    """Accept an enum member or its string value."""
    try:
        return SSEEventType(value)
    except ValueError:
        valid = ", ".join(t.value for t in SSEEventType)
        raise ValueError(f"unknown event type {value!r}; valid event types are: {valid}") from None
