"""A real worker process round-trips `system.ping` on both queues over the configured broker."""

from __future__ import annotations

import time

import pytest

PING_TIMEOUT_S = 60  # includes the worker's start-up on a busy machine


def _ping(queue: str, payload: str, timeout: float):
    from workers.system import ping

    return ping.apply_async((payload,), queue=queue).get(timeout=timeout, interval=0.02)


@pytest.mark.slow
def test_worker_answers_ping_on_both_queues(worker_process, worker_log) -> None:
    first = _ping("inference", "hello", PING_TIMEOUT_S)  # waits out the worker's start-up
    assert first["pong"] == "hello" and first["pid"] == worker_process.pid
    started = time.perf_counter()
    second = _ping("training", "again", 10)
    elapsed = time.perf_counter() - started
    assert second["pong"] == "again" and second["pid"] == worker_process.pid
    assert elapsed < 5, f"a warm round trip took {elapsed:.2f}s"
    assert worker_process.poll() is None, worker_log.read_text()


def test_routes_send_each_domain_to_its_queue() -> None:
    from workers.celery_app import app

    router = app.amqp.router
    assert router.route({}, "generation.run")["queue"].name == "inference"
    assert router.route({}, "finetune.run")["queue"].name == "training"
    assert router.route({}, "system.ping")["queue"].name == "inference"


def test_reliability_settings() -> None:
    from workers.celery_app import app

    conf = app.conf
    assert app.main == "imagebooth"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert "workers.system" in app.conf.include
