"""`imagebooth` command line: serve, worker, migrate, credits, and the ML entry points.

Commands that need torch import it lazily (inside the function) so `serve`, `migrate` and
the rest start fast on a machine without the ML stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

# Commands implemented by worker modules that load torch: name -> module with main(argv).
# Their own flags pass through untouched.
DELEGATED_COMMANDS: dict[tuple[str, ...], str] = {
    ("train-base",): "workers.shapes.train",
    ("finetune",): "workers.dreambooth.cli",
    ("eval", "prompts"): "workers.shapes.evaluate",
    ("eval", "subject"): "workers.dreambooth.evaluate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagebooth", description="ImageBooth text-to-image service")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="web server plus one worker (embedded by default)")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--migrate", action="store_true", help="upgrade the database schema first if it is behind")

    worker = commands.add_parser("worker", help="a Celery worker alone (production)")
    worker.add_argument("--queues", default="inference,training", help="comma-separated: inference,training")
    worker.add_argument("--pool", default="solo", help="Celery pool (default solo: one warm process)")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--migrate", action="store_true", help="upgrade the database schema first if it is behind")

    commands.add_parser("migrate", help="upgrade the database schema to the latest revision")

    credits = commands.add_parser("credits", help="credit administration")
    credits_commands = credits.add_subparsers(dest="credits_command", required=True, metavar="ACTION")
    grant = credits_commands.add_parser("grant", help="grant N paid credits to a user (negative corrects)")
    grant.add_argument("email")
    grant.add_argument("amount", type=int, metavar="N")
    grant.add_argument("--note", default=None)

    commands.add_parser("train-base", add_help=False, help="train the bundled base model (flags: train-base --help)")
    commands.add_parser("finetune", add_help=False, help="a DreamBooth fine-tune from photos (flags: finetune --help)")
    evaluate = commands.add_parser("eval", help="evaluations (eval prompts --help, eval subject --help)")
    evaluate.add_argument("what", choices=sorted(key[1] for key in DELEGATED_COMMANDS if key[0] == "eval"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, passthrough = parser.parse_known_args(argv)
    delegated = _delegated_module(args)
    if delegated is not None:
        return _run_delegated(delegated, passthrough)
    if passthrough:
        parser.error(f"unrecognized arguments: {' '.join(passthrough)}")
    handler: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve,
        "worker": _worker,
        "migrate": _migrate,
        "credits": _credits,
    }
    try:
        return handler[args.command](args)
    except ValidationError as invalid:
        print(f"imagebooth: configuration error:\n{invalid}", file=sys.stderr)
        return 2


def _delegated_module(args: argparse.Namespace) -> str | None:
    key = (args.command,) + ((args.what,) if args.command == "eval" else ())
    return DELEGATED_COMMANDS.get(key)


def _run_delegated(module_name: str, argv: list[str]) -> int:
    module = importlib.import_module(module_name)  # imports torch: only now
    result = module.main(argv)
    return result if isinstance(result, int) else 0


# --- commands ---------------------------------------------------------------------------
def _serve(args: argparse.Namespace) -> int:
    from app.serve import serve

    return serve(args.host, args.port, migrate=args.migrate)


def _worker(args: argparse.Namespace) -> int:
    from app.serve import run_worker

    return run_worker(args.queues, pool=args.pool, concurrency=args.concurrency, loglevel=args.loglevel,
                      migrate=args.migrate)


def _migrate(_args: argparse.Namespace) -> int:
    from app.config import get_settings
    from app.migrate import upgrade

    upgrade()
    print(f"database is up to date: {_redacted(get_settings().database_url)}")
    return 0


def _credits(args: argparse.Namespace) -> int:
    from app.auth import repository as users
    from app.auth.service import normalize_email
    from app.credits import service as credits
    from app.db import session_scope

    if args.amount == 0:
        print("imagebooth: N must not be zero", file=sys.stderr)
        return 2
    with session_scope() as session:
        user = users.user_by_email(session, normalize_email(args.email))
        if user is None:
            print(f"imagebooth: no user with email {args.email!r}", file=sys.stderr)
            return 1
        credits.admin_grant(session, user, args.amount, note=args.note)
        balance = credits.summary(session, user).balance
    print(f"granted {args.amount} credits to {user.email}; balance is now {balance}")
    return 0


def _redacted(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
