"""ssewatch core: the SSE subscriber protocol over Redis.

Everything a producer, an SSE endpoint or a notebook needs is importable from here.
"""

from sse_core.cancellation import checked
from sse_core.categories import (
    VALID_CATEGORIES,
    SSEEventCategory,
    parse_category_list,
    validate_categories,
)
from sse_core.cluster_hub import connection_status
from sse_core.codec import MalformedEvent
from sse_core.connection import connect, redact_url
from sse_core.events import SSEEvent
from sse_core.hub import ConnectionState, ConnectionStatus
from sse_core.ids import epoch_ms, parse_event_id, parse_user_id, uuid7
from sse_core.keys import SSEChannelKeys
from sse_core.protocol import SSEPublisherProtocol, SSESubscriberProtocol
from sse_core.publisher import PublisherStats, RedisSSEPublisher, SSEPublishError
from sse_core.registry import (
    EVENT_REGISTRY,
    FAILURE_TYPES,
    EventTypeInfo,
    Severity,
    SSEEventType,
    get_category_for_event_type,
    severity_of,
)
from sse_core.replay import Replay
from sse_core.settings import SSESettings
from sse_core.subscriber import RedisSSESubscriber, StreamGap, SubscriberLagged, SubscriberStats

__all__ = [
    "EVENT_REGISTRY",
    "FAILURE_TYPES",
    "VALID_CATEGORIES",
    "ConnectionState",
    "ConnectionStatus",
    "EventTypeInfo",
    "MalformedEvent",
    "PublisherStats",
    "RedisSSEPublisher",
    "RedisSSESubscriber",
    "Replay",
    "SSEChannelKeys",
    "SSEEvent",
    "SSEEventCategory",
    "SSEEventType",
    "SSEPublishError",
    "SSEPublisherProtocol",
    "SSESettings",
    "SSESubscriberProtocol",
    "Severity",
    "StreamGap",
    "SubscriberLagged",
    "SubscriberStats",
    "checked",
    "connect",
    "connection_status",
    "epoch_ms",
    "get_category_for_event_type",
    "parse_category_list",
    "parse_event_id",
    "parse_user_id",
    "redact_url",
    "severity_of",
    "uuid7",
    "validate_categories",
]
