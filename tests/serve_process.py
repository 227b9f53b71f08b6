"""Starting `imagebooth serve` in tests: a free port and the URL it prints."""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import threading
import time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_url(process: subprocess.Popen, timeout: float) -> str:
    """The URL `serve` prints ("running at http://.../"), without its trailing slash."""
    # A reader thread, because select() on a buffered pipe misses lines already buffered.
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline and process.poll() is None:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen += line
        match = re.search(r"running at (http://\S+?)/?\s", line)
        if match:
            return match.group(1)
    raise AssertionError(f"imagebooth serve printed no URL within {timeout}s:\n{seen}")
