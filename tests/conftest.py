"""Shared fixtures: a real redis-server for the whole session, fakeredis for unit tests.

A missing ``redis-server`` is an error, never a skip: tests that claim Redis behaviour must run
against the real thing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fakeredis import FakeAsyncRedis
from playwright.async_api import Browser, async_playwright
from redis.asyncio import Redis

from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH
from tests.support.redis_server import RedisServer


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
