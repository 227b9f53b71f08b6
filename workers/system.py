"""Operational tasks. `system.ping` proves a worker is consuming a queue end to end."""

from __future__ import annotations

import os
import socket

from workers.celery_app import app


@app.task(name="system.ping", ignore_result=False)
def ping(payload: str = "") -> dict[str, str | int]:
    return {"pong": payload, "hostname": socket.gethostname(), "pid": os.getpid()}
