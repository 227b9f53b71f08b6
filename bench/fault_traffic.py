"""The users and traffic of bench/faults.py, and the count at the end: what was accepted,
what ended, what each job was charged and what every balance says (read from the database,
the truth, not from the API)."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine, case, create_engine, func, literal, select, text

from bench.fault_processes import ROOT, Service

PROMPTS = ("a red circle on the left", "a small blue star", "a large green square on a yellow background")
SUBMIT_EVERY_S = 1.5  # per user: six users submit about four jobs a second together


@dataclass
class User:
    id: str
    email: str
    key: str
    granted: int


def make_users(service: Service, count: int, credits: int) -> list[User]:
    users = []
    for number in range(count):
        email = f"fault-user-{number}@example.com"
        browser = httpx.Client(base_url=service.url, timeout=30)
        me = browser.post("/api/v1/auth/signup", json={"email": email, "password": "fault bench password"}).json()
        key = browser.post("/api/v1/api-keys", json={"name": "bench"},
                           headers={"X-CSRF-Token": browser.cookies["imagebooth_csrf"]}).json()["key"]
        subprocess.run([sys.executable, "-m", "app.cli", "credits", "grant", email, str(credits)], cwd=ROOT,
                       env=service.env, check=True, capture_output=True)
        users.append(User(me["id"], email, key, credits))
    return users


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def start_finetune(url: str, user: User) -> str:
    from tests.personalization.upload_samples import files, good_photos

    client = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {user.key}"})
    subject = client.post("/api/v1/subjects", data={"name": "Bench", "class_noun": "circle"}, files=files(good_photos(3)))
    response = client.post(f"/api/v1/subjects/{subject.json()['id']}/finetunes", json={})
    assert response.status_code == 202, response.text
    return response.json()["id"]


@dataclass
class Traffic:
    url: str
    users: list[User]
    database_url: str = ""
    answers: Counter[str] = field(default_factory=Counter)  # "POST 202", "GET 503", "POST no answer"
    accepted: list[str] = field(default_factory=list)
    finetunes: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, user: User) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {user.key}"})

    def submit(self, user: User, n: int = 1, steps: int = 4) -> str | None:
        body = {"prompt": random.choice(PROMPTS), "n": n, "steps": steps}
        answer = self._call("POST", lambda client: client.post("/api/v1/generations", json=body), user)
        if answer is not None and answer.status_code == 202:
            with self._lock:
                self.accepted.append(answer.json()["id"])
            return str(answer.json()["id"])
        return None

    def _call(self, method: str, send: Callable[[httpx.Client], httpx.Response], user: User) -> httpx.Response | None:
        try:
            with self.client(user) as client:
                answer = send(client)
        except httpx.HTTPError:
            self._count(f"{method} no answer")  # the web process is down
            return None
        self._count(f"{method} {answer.status_code}")
        return answer

    def _count(self, answer: str) -> None:
        with self._lock:
            self.answers[answer] += 1

    def burst(self, per_user: int = 2) -> None:
        """Longer jobs from every user at once: a queue and a running job for the fault to hit."""
        for user in self.users:
            for _ in range(per_user):
                self.submit(user, n=2, steps=50)

    def _user_loop(self, user: User) -> None:
        mine: list[str] = []
        while not self._stop.wait(random.uniform(0.5, 1.5) * SUBMIT_EVERY_S):
            job_id = self.submit(user, n=random.choice((1, 2)))
            if job_id:
                mine.append(job_id)
            if mine:  # reads during a fault must not fail either
                self._call("GET", lambda client: client.get(f"/api/v1/generations/{random.choice(mine)}"), user)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._user_loop, args=(user,), daemon=True) for user in self.users]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def wait_for_workers(self) -> None:
        """One job through the inference worker: it is up and warm."""
        job_id = self.submit(self.users[0])
        wait_until(lambda: self.status(job_id or "") == "succeeded", 180, "the inference worker to warm up")

    def track_finetune(self, finetune_id: str) -> None:
        self.finetunes.append(finetune_id)

    def status(self, job_id: str) -> str | None:
        return self._scalar("SELECT status FROM generations WHERE id = :id", job_id)

    def finetune_step(self, finetune_id: str) -> int:
        return int(self._scalar("SELECT step FROM finetunes WHERE id = :id", finetune_id) or 0)

    def _scalar(self, query: str, job_id: str) -> str | None:
        with _engine(self.database_url).connect() as connection:
            return connection.execute(text(query), {"id": job_id}).scalar()


_ENGINES: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    if url not in _ENGINES:
        _ENGINES[url] = create_engine(url, pool_pre_ping=True)
    return _ENGINES[url]


# --- the count ----------------------------------------------------------------------------
@dataclass
class Outcome:
    backend: str
    fault: str
    accepted: int  # jobs committed (and charged), whether or not the client heard 202
    client_accepted: int
    in_flight: int  # accepted and not yet settled when the fault began
    ended: int  # final and settled
    retried: int  # jobs run more than once (their worker was lost)
    lost: int
    resolve_s: float | None  # fault over -> the last job accepted before then ended and settled (0: all before)
    http_500: int
    answers: dict[str, int]
    charge_mismatches: int  # jobs whose ledger net is not exactly what they made
    balance_mismatches: int  # users whose balance is not granted - what they were charged
    finetunes: list[dict]

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.http_500 == 0 and self.charge_mismatches == 0 and self.balance_mismatches == 0

    def line(self) -> str:
        resolve = f"{self.resolve_s:.1f} s" if self.resolve_s is not None else "never"
        return (f"{self.backend:9} {self.fault:9} accepted {self.accepted:3} in flight {self.in_flight:2}"
                f" ended {self.ended:3} retried {self.retried}"
                f" lost {self.lost}"
                f"  resolved in {resolve}  HTTP 500: {self.http_500}  charges off: {self.charge_mismatches}"
                f"  balances off: {self.balance_mismatches}  {'OK' if self.ok else 'FAILED'}")


def _jobs(engine: Engine) -> list[dict[str, Any]]:
    """Every job of both kinds with what it made (typed columns: datetimes come back aware)."""
    from app.models import Finetune, Generation, Image

    made = select(func.count()).where(Image.generation_id == Generation.id).scalar_subquery()
    kinds = (
        ("generation", select(Generation.id, Generation.user_id, Generation.status, Generation.created_at,
                              Generation.settled_at, Generation.cost, Generation.n, made.label("made"),
                              Generation.attempts, literal(None).label("resumed"))),
        ("finetune", select(Finetune.id, Finetune.user_id, Finetune.status, Finetune.created_at, Finetune.settled_at,
                            Finetune.cost, literal(1).label("n"),
                            case((Finetune.status == "succeeded", 1), else_=0).label("made"), Finetune.attempts,
                            Finetune.resumed_from_step.label("resumed"))),
    )
    with engine.connect() as connection:
        return [{"kind": kind, **row} for kind, query in kinds for row in connection.execute(query).mappings()]


def check_jobs(database_url: str, fault: str, backend: str, traffic: Traffic, window: tuple[float, float],
               deadline_s: float) -> Outcome:
    """Wait (up to deadline_s after the fault's end) until every job has ended and is settled.
    `window`: when the fault began and ended (wall clock); the time to resolve runs from its end
    to the settlement of the last job accepted before then."""
    began, ended = window
    engine = _engine(database_url)
    while True:
        rows = _jobs(engine)
        open_jobs = [row for row in rows if row["settled_at"] is None]  # settled only once it ended
        if not open_jobs or time.time() > ended + deadline_s:
            break
        time.sleep(0.5)
    before = [row for row in rows if row["created_at"].timestamp() < ended]
    in_flight = [row for row in before if row["settled_at"] is None or row["settled_at"].timestamp() > began]
    last = max((row["settled_at"].timestamp() for row in before if row["settled_at"]), default=ended)
    charges, balances = _money(engine, rows)
    return Outcome(
        backend=backend, fault=fault, accepted=len(rows), client_accepted=len(traffic.accepted) + len(traffic.finetunes),
        in_flight=len(in_flight), ended=len(rows) - len(open_jobs), retried=sum(row["attempts"] > 1 for row in rows),
        lost=len(open_jobs), resolve_s=max(0.0, last - ended) if not open_jobs else None,
        http_500=sum(count for answer, count in traffic.answers.items() if answer.endswith(" 500")),
        answers=dict(traffic.answers), charge_mismatches=charges, balance_mismatches=balances,
        finetunes=[{"status": r["status"], "attempts": r["attempts"], "resumed_from_step": r["resumed"]}
                   for r in rows if r["kind"] == "finetune"],
    )


def _money(engine: Engine, rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(jobs not charged exactly for what they made, users whose balance does not add up)."""
    with engine.connect() as connection:
        nets = dict(connection.execute(text("SELECT reference, sum(amount) FROM credit_ledger GROUP BY reference")).all())
        totals = dict(connection.execute(text("SELECT user_id, sum(amount) FROM credit_ledger GROUP BY user_id")).all())
        granted = dict(connection.execute(text(
            "SELECT user_id, sum(amount) FROM credit_ledger WHERE reason = 'admin' GROUP BY user_id")).all())
    charged: Counter[str] = Counter()
    mismatches = 0
    for row in rows:
        charge = row["cost"] * row["made"] // row["n"]
        charged[row["user_id"]] += charge
        mismatches += int(nets.get(f"{row['kind']}:{row['id']}", 0) != -charge)
    balances = sum(int(totals.get(user, 0) != granted.get(user, 0) - charged[user]) for user in granted)
    return mismatches, balances
