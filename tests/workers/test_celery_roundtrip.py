"""A real worker process round-trips `system.ping` on both queues over the configured broker."""

from __future__ import annotations

import pytest

PING_TIMEOUT_S = 60  # includes the worker's start-up on a busy machine


def _ping(queue: str, payload: str, timeout: float):
    from workers.system import ping

    return ping.apply_async((payload,), queue=queue).get(timeout=timeout, interval=0.02)


@pytest.mark.slow
def test_worker_answers_ping_on_both_queues(worker_process, worker_log) -> None:
    first = _ping("inference", "hello", PING_TIMEOUT_S)  # waits out the worker's start-up
    assert first["pong"] == "hello" and first["pid"] == worker_process.pid
    second = _ping("training", "again", PING_TIMEOUT_S)  # how fast: bench/generation.py (queue pickup)
    assert second["pong"] == "again" and second["pid"] == worker_process.pid
    assert worker_process.poll() is None, worker_log.read_text()


def test_routes_send_each_domain_to_its_queue() -> None:
    from workers.celery_app import app

    router = app.amqp.router
    assert router.route({}, "generation.run")["queue"].name == "inference"
    assert router.route({}, "finetune.run")["queue"].name == "training"
    assert router.route({}, "system.ping")["queue"].name == "inference"


def test_reliability_settings() -> None:
    import workers.finetune
    import workers.generation  # noqa: F401
    from workers.celery_app import app

    conf = app.conf
    assert app.main == "imagebooth"
    for name in ("generation.run", "finetune.run"):  # the job tasks' policy (workers/jobs.py)
        task = app.tasks[name]
        assert task.acks_late and task.reject_on_worker_lost and task.max_retries is None, name
    assert conf.broker_connection_max_retries is None  # a broker outage is waited out
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert "workers.system" in app.conf.include
