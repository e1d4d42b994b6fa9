"""API keys of the HTTP API: ``python -m scripts.api_keys``.

    python -m scripts.api_keys create --name billing --scope produce --scope read --user u1
    python -m scripts.api_keys list [--json]
    python -m scripts.api_keys revoke 3f2c9a1b0d4e5f60

``create`` prints the key once, on stdout (nothing else is printed there, so
``KEY=$(python -m scripts.api_keys create ...)`` works); only its SHA-256 is stored, so a lost
key cannot be shown again: revoke it and create another. Scopes: ``produce`` (create and
cancel renders), ``read`` (renders, timelines, quotas), ``operate`` (replay, dead letters,
pauses). ``--user`` (repeatable) binds the key to those users; without it the key acts for any
user. Every create and revoke is in the audit log (actor ``script:api_keys``). A revoked key
is refused within ``API_KEY_CACHE_S`` by every web process.
Exit status: 0 on success, 1 when the key to revoke is unknown or already revoked, 2 on bad
usage.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from shared import api_keys
from shared.access_models import ApiKey
from shared.log import configure_logging

ACTOR = "script:api_keys"
console = Console(stderr=True)


def _show(keys: list[ApiKey], as_json: bool) -> None:
    rows = [
        {
            "id": k.id,
            "name": k.name,
            "scopes": k.scopes,
            "user_ids": k.user_ids,
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
        }
        for k in keys
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} API key(s)")
    for column in ("id", "name", "scopes", "users", "created", "revoked", "last used"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["name"]),
            ",".join(r["scopes"] or []),
            ",".join(r["user_ids"] or []) or "any",
            str(r["created_at"])[:19],
            str(r["revoked_at"] or "")[:19],
            str(r["last_used_at"] or "")[:19],
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.api_keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    creating = commands.add_parser("create", help="create a key; prints it once")
    creating.add_argument("--name", required=True)
    creating.add_argument(
        "--scope", action="append", required=True, choices=api_keys.SCOPES, help="repeatable"
    )
    creating.add_argument("--user", action="append", help="bind to this user id; repeatable")
    listing = commands.add_parser("list", help="every key, oldest first (never the secrets)")
    listing.add_argument("--json", action="store_true")
    revoking = commands.add_parser("revoke", help="refuse a key from now on")
    revoking.add_argument("id", help="the key's public id (rq_<id>_...)")
    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "create":
        try:
            key, plaintext = api_keys.create(args.name, args.scope, args.user, actor=ACTOR)
        except api_keys.InvalidApiKeySpec as exc:
            console.print(f"[red]{exc}[/red]")
            return 2
        users = ",".join(key.user_ids) if key.user_ids else "any user"
        console.print(f"created key {key.id} ({','.join(key.scopes)}; {users}); shown once:")
        print(plaintext)
        return 0
    if args.command == "list":
        _show(api_keys.list_keys(), args.json)
        return 0
    if api_keys.revoke(args.id, actor=ACTOR):
        console.print(f"revoked key {args.id}")
        return 0
    console.print(f"[red]no active key {args.id}[/red]")
    return 1


if __name__ == "__main__":
    sys.exit(main())
