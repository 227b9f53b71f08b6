"""The webhook delivery loop, in every worker: a thread beside the tasks, never in a job's way.

Each round leases up to SENDERS due deliveries (app/webhooks/delivery.py; a delivery leased by
one worker's loop is not taken by another's) and sends them in parallel, so one slow endpoint
holds up at most its own slot for one timeout. An idle loop sleeps webhook_poll_s between rounds.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from celery.signals import worker_ready

from app.config import get_settings
from app.webhooks import delivery

log = logging.getLogger(__name__)
SENDERS = 4


def run_round(pool: ThreadPoolExecutor) -> int:
    """Send what is due now; how many deliveries were attempted."""
    leased = delivery.take_due(SENDERS)
    list(pool.map(delivery.attempt, leased))
    return len(leased)


def _deliver_forever() -> None:
    with ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="webhook-send") as pool:
        while True:
            try:
                attempted = run_round(pool)
            except Exception:  # a database outage: the deliveries wait in their table
                log.exception("webhook delivery round failed; retrying")
                attempted = 0
            if not attempted:
                time.sleep(get_settings().webhook_poll_s)


@worker_ready.connect
def _start_delivery_loop(**_: object) -> None:
    threading.Thread(target=_deliver_forever, name="webhook-delivery", daemon=True).start()
