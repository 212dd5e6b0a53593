"""Debian's Chromium for browser tests and benchmarks (Playwright cannot download browsers here).

The flags keep headless Chromium off the network: without the background-networking ones it
keeps trying to reach Google's hosts, which this machine's closed network refuses.
"""

from __future__ import annotations

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
