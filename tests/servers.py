"""Starting a real `anlam serve` process in a test: wait until it answers, or say why it died."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_serving(process: subprocess.Popen, base: str, log: Path, timeout: float = 120) -> None:
    """Return once ``base``/healthz answers 200; fail with the server's log if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"server exited: {log.read_text(encoding='utf-8')}"
        assert time.monotonic() < deadline, "server did not start"
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
