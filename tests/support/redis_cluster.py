"""A throwaway Redis Cluster (3 primaries + 3 replicas) of Debian ``redis-server`` processes.

Each node is a :class:`~tests.support.redis_server.RedisServer` in its own temporary directory
with cluster mode on; ``redis-cli --cluster create`` (Debian's ``redis-tools``, a dependency of
``redis-server``) assigns slots and replicas. Cluster-bus ports are the node ports + 10,000, so
node ports are picked below 55,535 with both ports free. Ready means ``cluster_state:ok`` on
every node *and* every replica's ``master_link_status:up`` (replicas attach a moment after
``create`` returns). Admin helpers (failover, slot migration) use a synchronous client: tests
run them in a thread while their event loop keeps traffic flowing.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from tests.support.redis_server import RedisServer

CLUSTER_ARGS = (
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "2000",
)
_BUS_OFFSET = 10_000


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """``count`` distinct ports below 55,535 whose cluster-bus port (+10,000) is free too."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(20_000, 45_000)
        if port not in chosen and _bindable(port) and _bindable(port + _BUS_OFFSET):
            chosen.append(port)
    return chosen


@dataclass(frozen=True)
class Node:
    port: int
    node_id: str
    primary: bool
    primary_id: str | None  # a replica's primary


class LocalCluster:
    def __init__(self, primaries: int = 3, replicas_per_primary: int = 1) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (Debian: apt-get install redis-tools)")
        self.cli = cli
        self.size = primaries * (1 + replicas_per_primary)
        self.replicas_per_primary = replicas_per_primary
        self.servers: list[RedisServer] = []

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def url(self) -> str:
        """A URL of one node (any node works as a cluster client's start node)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> LocalCluster:
        try:
            for port in cluster_ports(self.size):
                self.servers.append(RedisServer(port, extra_args=CLUSTER_ARGS).start())
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in self.ports),
                    "--cluster-replicas",
                    str(self.replicas_per_primary),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.wait_ready()
        except BaseException:
            self.cleanup()
            raise
        return self

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()
        self.servers.clear()

    # -- inspection --------------------------------------------------------------------------

    def client(self, port: int) -> Redis:
        return Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)

    def nodes(self) -> list[Node]:
        """Every live node as the cluster sees it now."""
        found: list[Node] = []
        for port in self.ports:
            with self.client(port) as c:
                try:
                    info = c.info("replication")
                    node_id = str(c.execute_command("CLUSTER", "MYID"))
                except (OSError, RedisError):
                    continue  # a stopped node
                primary_id = None
                if info["role"] != "master":
                    primary_id = self._node_id_at(int(info["master_port"]))
                found.append(Node(port, node_id, info["role"] == "master", primary_id))
        return found

    def _node_id_at(self, port: int) -> str | None:
        with self.client(port) as c:
            try:
                return str(c.execute_command("CLUSTER", "MYID"))
            except (OSError, RedisError):
                return None

    def primaries(self) -> list[Node]:
        return [n for n in self.nodes() if n.primary]

    def owner_of(self, slot: int) -> Node:
        """The primary serving ``slot`` (as the first live node reports it)."""
        by_id = {n.node_id: n for n in self.nodes()}
        with self.client(self.primaries()[0].port) as c:
            for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return by_id[str(primary[2])]
        raise LookupError(f"slot {slot} is not served")

    def replica_of(self, primary: Node) -> Node:
        return next(n for n in self.nodes() if n.primary_id == primary.node_id)

    def shard_subscribers(self, channel: str) -> int:
        """``PUBSUB SHARDNUMSUB`` on the node that owns the channel's slot."""
        owner = self.owner_of(self.keyslot(channel))
        with self.client(owner.port) as c:
            reply = c.execute_command("PUBSUB", "SHARDNUMSUB", channel)
        return int(reply[1])

    def shard_channels(self) -> set[str]:
        """Every shard channel with a subscriber, on any primary (``PUBSUB SHARDCHANNELS``)."""
        found: set[str] = set()
        for node in self.primaries():
            with self.client(node.port) as c:
                found.update(str(ch) for ch in c.execute_command("PUBSUB", "SHARDCHANNELS"))
        return found

    def keyslot(self, key: str) -> int:
        with self.client(self.ports[0]) as c:
            return int(c.execute_command("CLUSTER", "KEYSLOT", key))

    def flushall(self) -> None:
        for node in self.primaries():
            with self.client(node.port) as c:
                c.flushall()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every node says ``cluster_state:ok`` and every replica's link to its primary is
        up (a replica's first full sync lands a moment after ``create`` returns)."""
        self._wait(self._ready, "become ready", timeout)

    def _ready(self) -> bool:
        try:
            epochs = set()
            for port in self.ports:
                with self.client(port) as c:
                    info = c.execute_command("CLUSTER", "INFO")
                    text = info if isinstance(info, str) else info.decode()
                    if "cluster_state:ok" not in text:
                        return False
                    replication = c.info("replication")
                    if replication["role"] != "master" and replication.get(
                        "master_link_status"
                    ) != ("up"):
                        return False
                    # Every node agrees on the configuration (same slot map version).
                    epochs.add(_field(text, "cluster_current_epoch"))
            primaries = sum(1 for n in self.nodes() if n.primary)
            return len(epochs) == 1 and primaries * (1 + self.replicas_per_primary) == self.size
        except (OSError, RedisError):
            return False

    # -- faults ----------------------------------------------------------------------------

    def failover(self, primary: Node, timeout: float = 30.0) -> Node:
        """A graceful manual failover: ``CLUSTER FAILOVER`` on the primary's replica; returns the
        new primary once every node agrees and the old primary follows it."""
        replica = self.replica_of(primary)
        with self.client(replica.port) as c:
            c.execute_command("CLUSTER", "FAILOVER")

        def switched() -> bool:
            roles = {n.port: n for n in self.nodes()}
            new, old = roles.get(replica.port), roles.get(primary.port)
            return bool(new and new.primary and old and old.primary_id == new.node_id)

        self._wait(switched, "fail over", timeout)
        self.wait_ready(timeout)
        return next(n for n in self.nodes() if n.port == replica.port)

    def migrate_slot(self, slot: int, target: Node, *, pause: float = 0.0) -> None:
        """Move ``slot`` (and its keys) to ``target`` the way ``redis-cli --cluster reshard``
        does: IMPORTING/MIGRATING, ``MIGRATE`` key by key, then ``SETSLOT NODE`` everywhere.
        ``pause`` sleeps between keys so live traffic runs during the migration."""
        source = self.owner_of(slot)
        if source.node_id == target.node_id:
            raise ValueError(f"slot {slot} is already on {target.port}")
        with self.client(target.port) as dst, self.client(source.port) as src:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
            while True:
                keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10)
                if not keys:
                    break
                for key in keys:
                    src.execute_command("MIGRATE", "127.0.0.1", target.port, key, 0, 5000)
                    time.sleep(pause)
            dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        for node in self.primaries():
            if node.node_id not in (source.node_id, target.node_id):
                with self.client(node.port) as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        self.wait_ready()

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Poll ``check`` until true (a test's view of the cluster converging)."""
        self._wait(check, what, timeout)

    def _wait(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise RuntimeError(f"the local Redis Cluster did not {what} within {timeout}s")


def _field(info: str, name: str) -> str:
    for line in info.splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return ""
