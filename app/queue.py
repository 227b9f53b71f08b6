"""Sending work to the workers, by task name only.

The web process never imports task modules (they load torch); Celery routes the name to
its queue (`generation.*` -> inference, `finetune.*` -> training). Tasks take ids.
"""

from __future__ import annotations


def enqueue(task_name: str, *ids: str) -> str:
    """Queue `task_name(*ids)`; returns the Celery task id."""
    # Imported on first use: the Celery app costs start-up time the web process need not pay.
    from workers.celery_app import app as celery

    return celery.send_task(task_name, args=list(ids)).id
