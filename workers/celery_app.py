"""The Celery application shared by every worker and by the web process (which only sends).

Queues: `inference` (generation, latency-bound) and `training` (fine-tunes, long-running).
Job state lives in the database, so tasks need no result store; only `system.ping` keeps a
result, for round-trip checks.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery
from celery.signals import worker_process_init
from kombu import Exchange, Queue

from app.config import Settings, get_settings
from app.db import dispose_engines
from app.jobs.kinds import INFERENCE_QUEUE, QUEUES, task_routes
from workers import filesystem_broker

# Imported by the worker only (a sender never imports them: they load torch).
TASK_MODULES = ["workers.system", "workers.generation", "workers.finetune", "workers.webhooks"]
# Sending gives up after about a second (the job stays in the outbox: app/jobs/outbox.py),
# so a submit never hangs on a broker that is down.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.25, "interval_max": 0.5}


def _result_backend(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    results = settings.data_dir / "celery-results"
    results.mkdir(parents=True, exist_ok=True)
    return f"file://{results}"


def _prepare_broker_folders(settings: Settings) -> None:
    for key in ("data_folder_in", "control_folder", "processed_folder"):
        folder = settings.broker_transport_options.get(key)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    filesystem_broker.register()
    _prepare_broker_folders(settings)
    celery = Celery("imagebooth", include=TASK_MODULES)
    celery.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=settings.broker_transport_options,
        broker_connection_retry_on_startup=True,
        # A worker waits out a broker outage of any length (the default gives up after 100
        # tries) and keeps running its task meanwhile.
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_timeout=2,
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        result_backend=_result_backend(settings),
        task_ignore_result=True,  # job state lives in the database
        result_expires=3600,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Each queue has its own direct exchange; without one, Celery binds every queue to
        # the default exchange and key, and a message would reach both queues.
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        task_default_queue=INFERENCE_QUEUE,
        task_default_exchange=INFERENCE_QUEUE,
        task_default_routing_key=INFERENCE_QUEUE,
        task_routes=task_routes(),
        # Job tasks declare their own delivery policy (workers/jobs.py); a worker takes one
        # task at a time so none waits behind a long job on a busy worker.
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
    )
    return celery


@worker_process_init.connect
def _fresh_database_connections_in_child(**_: object) -> None:
    # Prefork pool children inherit the parent's pooled connections; sharing them corrupts
    # both sides, so each child opens its own.
    dispose_engines(close=False)


app = create_celery()
celery_app = app  # the name other modules import; `celery -A workers.celery_app` finds `app`
