"""`imagebooth` commands (subprocesses, real database) and the lazy ML entry points."""

from __future__ import annotations

import sys
import types

import pytest

from app import cli


def test_migrate_is_idempotent(run_cli) -> None:
    result = run_cli("migrate")
    assert result.returncode == 0, result.stderr
    assert "database is up to date" in result.stdout
    assert "password" not in result.stdout  # the URL is shown redacted


def test_credits_grant(client, accounts, run_cli) -> None:
    me = accounts.signup(client, "rich@example.com")
    result = run_cli("credits", "grant", "RICH@example.com", "40")
    assert result.returncode == 0, result.stderr
    assert "balance is now 40" in result.stdout
    assert client.get("/api/v1/me").json()["credits"]["balance"] == 40
    assert me["email"] == "rich@example.com"


def test_credits_grant_unknown_email_fails_clearly(run_cli) -> None:
    result = run_cli("credits", "grant", "ghost@example.com", "5")
    assert result.returncode == 1 and "no user with email" in result.stderr


def test_credits_grant_rejects_zero_and_non_numbers(run_cli) -> None:
    assert run_cli("credits", "grant", "a@example.com", "0").returncode == 2
    result = run_cli("credits", "grant", "a@example.com", "lots")
    assert result.returncode == 2 and "invalid int value" in result.stderr


def test_worker_rejects_unknown_queue(run_cli) -> None:
    result = run_cli("worker", "--queues", "inference,gpu")
    assert result.returncode == 2 and "unknown queue" in result.stderr


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch):
    """Stand in for a worker module that does not exist yet, recording its argv."""
    calls: list[list[str]] = []

    def install(name: str) -> list[list[str]]:
        module = types.ModuleType(name)
        module.main = lambda argv: calls.append(list(argv))
        monkeypatch.setitem(sys.modules, name, module)
        return calls

    return install


def test_train_base_passes_its_flags_through(fake_module) -> None:
    calls = fake_module("workers.shapes.train")
    assert cli.main(["train-base", "--steps", "100", "--out", "models/x", "-h", "extra"]) == 0
    assert calls == [["--steps", "100", "--out", "models/x", "-h", "extra"]]


def test_eval_prompts_passes_its_flags_through(fake_module) -> None:
    calls = fake_module("workers.shapes.evaluate")
    assert cli.main(["eval", "prompts", "--model", "models/shapes-v1", "--n", "8"]) == 0
    assert calls == [["--model", "models/shapes-v1", "--n", "8"]]


def test_finetune_and_eval_subject_pass_their_flags_through(fake_module) -> None:
    finetune = fake_module("workers.dreambooth.cli")
    assert cli.main(["finetune", "--images", "a.png", "b.png", "c.png", "--class-noun", "circle", "--out", "o"]) == 0
    assert finetune == [["--images", "a.png", "b.png", "c.png", "--class-noun", "circle", "--out", "o"]]
    evaluation = fake_module("workers.dreambooth.evaluate")
    assert cli.main(["eval", "subject", "--steps", "50"]) == 0
    assert evaluation[-1] == ["--steps", "50"]


def test_unknown_flags_on_web_commands_are_errors(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["migrate", "--bogus"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
