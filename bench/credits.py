"""Cost of the credit gate: requests per second through POST /api/v1/generations with the
gate (Redis Lua reserve + ledger hold) versus the same endpoint with the gate switched off.

Needs Postgres and Redis (the production gate), taken from the environment:
    IMAGEBOOTH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test_credits \\
    IMAGEBOOTH_REDIS_URL=redis://127.0.0.1:6379/13 python bench/credits.py [--seconds 3]
The database is migrated and a bench user added; Redis db is flushed. The app runs in
process (Starlette's TestClient, sequential requests); dispatching to the workers and the
rate limits are switched off in both variants, so only the gate differs. Variants alternate
in short rounds so that a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_RATIO = 0.85


def prepare() -> str:
    """Migrate, add a user with plenty of paid credits and an API key; return the key."""
    from app import migrate
    from app.auth import service as auth
    from app.auth.models import User
    from app.credits import service as credits
    from app.db import session_scope
    from app.model_base import new_id
    from app.redis_client import get_redis

    migrate.upgrade()
    get_redis().flushdb()
    with session_scope() as session:
        user = User(email=f"bench-{new_id()[:8]}@example.com", password_hash="-")
        session.add(user)
        session.flush()
        credits.admin_grant(session, user, 10_000_000, note="bench")
        _, key = auth.create_api_key(session, user, "bench")
    return key


def measure(client, key: str, seconds: float) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {key}"}
    body = {"prompt": "a red circle", "n": 1}
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        response = client.post("/api/v1/generations", json=body, headers=headers)
        assert response.status_code == 202, response.text
        count += 1
    return count, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per variant (default 3)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.environ.get("IMAGEBOOTH_REDIS_URL") or "postgresql" not in os.environ.get("IMAGEBOOTH_DATABASE_URL", ""):
        print("bench/credits.py: set IMAGEBOOTH_DATABASE_URL (Postgres) and IMAGEBOOTH_REDIS_URL", file=sys.stderr)
        return 2
    os.environ.update({"IMAGEBOOTH_RATE_LIMITS_ENABLED": "false", "IMAGEBOOTH_PREMIUM_MAX_ACTIVE_JOBS": "1000000000"})

    from fastapi.testclient import TestClient

    from app.credits import service as credits
    from app.credits.gate import get_gate
    from app.credits.ledger import Reservation
    from app.credits.redis_gate import RedisGate
    from app.jobs import outbox
    from app.main import create_app

    key = prepare()
    assert isinstance(get_gate(), RedisGate), "the Redis gate is not active"
    outbox.send = lambda kind, job_id: True  # measure the web tier, not the broker
    real_reserve = credits.reserve

    def gate_off(session, user, amount, reference, now=None):
        return Reservation(user.id, reference, amount, 0, 0)

    totals = {"on": [0, 0.0], "off": [0, 0.0]}
    with TestClient(create_app()) as client:
        measure(client, key, 0.5)  # warm-up: connections, script cache, code paths
        for _ in range(args.rounds):
            for variant, reserve in (("on", real_reserve), ("off", gate_off)):
                credits.reserve = reserve
                count, elapsed = measure(client, key, args.seconds / args.rounds)
                totals[variant][0] += count
                totals[variant][1] += elapsed
    credits.reserve = real_reserve
    rate = {variant: count / elapsed for variant, (count, elapsed) in totals.items()}
    ratio = rate["on"] / rate["off"]
    print(f"gate on (Redis):  {rate['on']:8.1f} requests/s  ({totals['on'][0]} requests)")
    print(f"gate off:         {rate['off']:8.1f} requests/s  ({totals['off'][0]} requests)")
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"ratio on/off: {ratio:.3f} ({verdict} the target of {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
