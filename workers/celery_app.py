"""The Celery application shared by every worker and by the web process (which only sends).

Queues: `inference` (generation, latency-bound) and `training` (fine-tunes, long-running).
Job state lives in the database, so tasks need no result store; only `system.ping` keeps a
result, for round-trip checks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from celery import Celery
from celery.signals import worker_process_init
from kombu import Exchange, Queue

from app.config import Settings, get_settings
from app.db import dispose_engines
from workers import filesystem_broker

INFERENCE_QUEUE = "inference"
TRAINING_QUEUE = "training"
QUEUES = (INFERENCE_QUEUE, TRAINING_QUEUE)
# Task modules other issues add; each is included only once it exists, so adding one needs
# no change here. `importlib.util.find_spec` locates a module without importing it (the
# web process must not pull in torch through a task module).
OPTIONAL_TASK_MODULES = ("workers.generation", "workers.finetune")


def _task_modules() -> list[str]:
    return ["workers.system"] + [name for name in OPTIONAL_TASK_MODULES if importlib.util.find_spec(name)]


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
    celery = Celery("imagebooth", include=_task_modules())
    celery.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=settings.broker_transport_options,
        broker_connection_retry_on_startup=True,
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
        task_routes={"generation.*": {"queue": INFERENCE_QUEUE}, "finetune.*": {"queue": TRAINING_QUEUE}},
        # A task is acknowledged only when it finishes; a worker that dies mid-task has it
        # re-delivered (tasks are idempotent), and takes one task at a time so none waits
        # behind a long job on a busy worker.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
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
