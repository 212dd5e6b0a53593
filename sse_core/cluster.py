"""Redis Cluster helpers: where a key lives, and one pipelined round trip per node.

redis-py's cluster pipeline refuses ``EVALSHA`` and ``PUBLISH``, and the publish script must
stay one atomic call per event, so the coalescing batcher's batches are grouped by the node
that owns each key's slot and pipelined on that node's own connection (all nodes at once).
Order is kept per node, hence per stream: every call for one stream goes to one node, in the
caller's order (and the batcher's lanes keep one key's calls in one lane).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisError, TryAgainError

from sse_core.batcher import Call, LuaScript, RedisBatcher
from sse_core.connection import RedisClient
from sse_core.hub import CONNECTION_ERRORS
from sse_core.layouts import PUBLISH_SCRIPT, KeyLayout, SsewatchLayout

# Replies saying the slot is (being) served elsewhere: the call did not run where it was sent.
REDIRECTED = (MovedError, AskError, TryAgainError, ClusterDownError)

NodeCall = tuple[str, tuple[Any, ...]]
"""A command (its arguments, name first) and the key that decides which node runs it."""

# On a cluster a channel is a *shard* channel that shares its stream's hash tag (same slot), so
# the publish script stays single-slot and its subscribers read it from the stream's node.
SHARDED_PUBLISH_SCRIPT = PUBLISH_SCRIPT.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")
assert SHARDED_PUBLISH_SCRIPT != PUBLISH_SCRIPT
_SHARDED_SCRIPTS = {LuaScript(PUBLISH_SCRIPT).sha: LuaScript(SHARDED_PUBLISH_SCRIPT)}


def require_cluster_layout(layout: KeyLayout) -> None:
    """Cluster support covers ssewatch's own key layout (hash-tagged per user)."""
    if not isinstance(layout, SsewatchLayout):
        raise ValueError(
            f"a Redis Cluster needs the 'ssewatch' key layout, not {layout.name!r} "
            "(SSE_KEY_LAYOUT=ssewatch)"
        )


def sharded(call: Call) -> Call:
    """``call`` as it runs on a cluster: its ``PUBLISH`` (in the script or plain) becomes
    ``SPUBLISH``."""
    if call.script is not None:
        script = _SHARDED_SCRIPTS.get(call.script.sha)
        if script is None:
            raise ValueError("this publish script has no Redis Cluster variant")
        return Call(script, call.keys, call.args)
    if call.args and str(call.args[0]).upper() == "PUBLISH":
        return Call(None, call.keys, ("SPUBLISH", *call.args[1:]))
    return call


async def node_for(client: RedisCluster, key: str) -> ClusterNode:
    """The primary serving ``key``'s slot, as the client currently knows the topology."""
    await client.initialize()
    node = client.get_node_from_key(key)
    assert node is not None  # primaries always exist for covered slots
    return node


async def execute_per_node(
    client: RedisCluster,
    calls: Sequence[NodeCall],
    redirected_as: Sequence[tuple[Any, ...]] | None = None,
) -> list[Any]:
    """Results (or the error each call got) in ``calls`` order.

    Calls redirected because the topology moved under us (failover, slot migration) run again,
    one at a time and in their original order, through the client, which follows redirects and
    refreshes its slot map; they did not run where they were first sent, so none runs twice.
    If a node's connection fails, its calls get that error (which of them ran is unknown) and
    the slot map is refreshed for the next batch, as the client does for single commands.
    ``redirected_as`` gives the command to re-run instead (``EVAL`` for ``EVALSHA``: a replica
    promoted by a failover has never loaded the script).
    """
    await client.initialize()  # a no-op once the slot map is known
    groups: dict[str, tuple[ClusterNode, list[tuple[int, PipelineCommand]]]] = {}
    for index, (key, args) in enumerate(calls):
        node = client.get_node_from_key(key)
        assert node is not None  # primaries always exist for covered slots
        groups.setdefault(node.name, (node, []))[1].append((index, PipelineCommand(index, *args)))
    results: list[Any] = [None] * len(calls)

    async def run(node: ClusterNode, commands: list[tuple[int, PipelineCommand]]) -> bool:
        try:
            await node.execute_pipeline([command for _, command in commands])
        except (*CONNECTION_ERRORS, RedisError) as exc:
            for index, _ in commands:
                results[index] = exc
            return False
        for index, command in commands:
            results[index] = command.result
        return True

    sent = await asyncio.gather(*(run(node, commands) for node, commands in groups.values()))
    if not all(sent):
        with contextlib.suppress(*CONNECTION_ERRORS, RedisError):
            await client.nodes_manager.initialize()
    for index, result in enumerate(results):
        if isinstance(result, REDIRECTED):
            try:
                again = redirected_as[index] if redirected_as is not None else calls[index][1]
                results[index] = await client.execute_command(*again)
            except Exception as exc:  # reported like the pipelined calls' errors
                results[index] = exc
    return results


class ClusterBatcher(RedisBatcher):
    """The coalescing batcher on a Redis Cluster: a lane's batch leaves as one pipeline per
    node (all nodes at once) instead of one pipeline on one connection."""

    sends_inline = False  # redis-py's node pipelines are not known to be cancel-safe

    def __init__(self, client: RedisCluster) -> None:
        super().__init__(client)
        self._cluster = client

    async def _round_trip(self, calls: list[Call]) -> list[Any]:
        self.round_trips += 1
        commands: list[NodeCall] = [
            (
                str(c.keys[0]),
                ("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)
                if c.script is not None
                else tuple(c.args),
            )
            for c in calls
        ]
        redirected_as = [
            ("EVAL", c.script.source, len(c.keys), *c.keys, *c.args)
            if c.script is not None
            else tuple(c.args)
            for c in calls
        ]
        try:
            return await execute_per_node(self._cluster, commands, redirected_as)
        except (*CONNECTION_ERRORS, RedisError) as exc:  # no slot map at all
            return [exc] * len(calls)


def batcher_for(client: RedisClient) -> RedisBatcher:
    """The batcher shared by every publisher on ``client`` and the running loop."""
    if isinstance(client, RedisCluster):
        return ClusterBatcher.for_client(client)
    return RedisBatcher.for_client(client)
