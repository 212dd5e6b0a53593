"""Shared fixtures: a real redis-server (and a real Redis Cluster) for the whole session,
fakeredis for unit tests.

A missing ``redis-server`` is an error, never a skip: tests that claim Redis behaviour must run
against the real thing. Hypothesis keeps nothing between runs (no example database, its caches
in a throwaway directory), so a fresh clone and the hundredth run behave the same.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fakeredis import FakeAsyncRedis
from hypothesis import settings
from playwright.async_api import Browser, async_playwright
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH
from tests.support.redis_cluster import LocalCluster
from tests.support.redis_server import RedisServer

# No example database (state from earlier runs) and no deadline (a timing assertion: on a loaded
# 2-core CI box a 200 ms deadline fails tests whose behaviour is fine).
settings.register_profile("ssewatch", database=None, deadline=None, print_blob=True)
settings.load_profile("ssewatch")
_HYPOTHESIS_HOME = "HYPOTHESIS_STORAGE_DIRECTORY"
_hypothesis_home = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis' unicode tables and constant caches go to a directory of this run only."""
    if _HYPOTHESIS_HOME not in os.environ:
        os.environ[_HYPOTHESIS_HOME] = tempfile.mkdtemp(prefix="ssewatch-hypothesis-")
        config.stash[_hypothesis_home] = os.environ[_HYPOTHESIS_HOME]


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_hypothesis_home, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
        del os.environ[_HYPOTHESIS_HOME]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@asynccontextmanager
async def _emptied_client(url: str, *, decode_responses: bool) -> AsyncIterator[Redis]:
    client = Redis.from_url(url, decode_responses=decode_responses)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=[False, True], ids=["bytes", "decoded"])
async def redis_client(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> AsyncIterator[Redis]:
    """A client on the real server, emptied first; both ``decode_responses`` modes."""
    async with _emptied_client(redis_server.url, decode_responses=request.param) as client:
        yield client


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A bytes-mode client on the real server, emptied first (when one mode is enough)."""
    async with _emptied_client(redis_server.url, decode_responses=False) as client:
        yield client


@pytest.fixture
async def fake_redis() -> AsyncIterator[FakeAsyncRedis]:
    client = FakeAsyncRedis()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A private server for tests that kill or restart it (persisting data across restarts)."""
    server = RedisServer(persist=True).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium, driven by Playwright."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A real local Redis Cluster (3 primaries + 3 replicas) for the whole session."""
    cluster = LocalCluster().start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
async def cluster_client(redis_cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    """A bytes-mode cluster client, every primary emptied first."""
    redis_cluster.wait_ready()
    redis_cluster.flushall()
    client = await RedisCluster.from_url(redis_cluster.url).initialize()
    try:
        yield client
    finally:
        await client.aclose()
