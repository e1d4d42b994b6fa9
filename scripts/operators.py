"""``python -m scripts.operators``: the people who may log in to the web console.

    python -m scripts.operators add alice               # asks for the password twice
    printf '%s\\n' "$PW" | python -m scripts.operators add alice --password-stdin
    python -m scripts.operators passwd alice [--password-stdin]
    python -m scripts.operators disable alice           # also ends alice's sessions
    python -m scripts.operators enable alice
    python -m scripts.operators list

The password is never an argument (it would land in the shell history and ``ps``), never
printed and never logged; only its scrypt hash is stored (``shared/operators.py``).
Exit status: 0 done, 1 refused (unknown name, weak password, duplicate), 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from shared import audit, operators
from shared.log import configure_logging


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise operators.OperatorError("the two passwords differ")
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.operators", description="Manage web console operators."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("add", "passwd"):
        sub = commands.add_parser(name, help=f"{name} an operator's password")
        sub.add_argument("name")
        sub.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
    for name in ("disable", "enable"):
        commands.add_parser(name).add_argument("name")
    commands.add_parser("list")
    args = parser.parse_args(argv)
    configure_logging()
    actor = f"script:operators:{getpass.getuser()}"
    try:
        if args.command == "add":
            operators.create(args.name, _read_password(args.password_stdin))
            audit.record(actor, "operator.add", f"operator:{args.name}")
            print(f"operator {args.name} added")
        elif args.command == "passwd":
            operators.set_password(args.name, _read_password(args.password_stdin))
            audit.record(actor, "operator.passwd", f"operator:{args.name}")
            print(f"password of {args.name} changed")
        elif args.command == "disable":
            operators.disable(args.name)
            audit.record(actor, "operator.disable", f"operator:{args.name}")
            print(f"operator {args.name} disabled")
        elif args.command == "enable":
            operators.enable(args.name)
            audit.record(actor, "operator.enable", f"operator:{args.name}")
            print(f"operator {args.name} enabled")
        else:
            for op in operators.list_all():
                state = f"disabled {op.disabled_at:%Y-%m-%d}" if op.disabled_at else "enabled"
                print(f"{op.name}\t{state}\tcreated {op.created_at:%Y-%m-%d}")
    except operators.OperatorError as exc:
        print(f"operators: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
