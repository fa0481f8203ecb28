"""``python manage.py apikey``: API keys from a shell (docs/API.md, "Authentication").

    apikey create --user NAME --label L --scopes read,trade [--ip CIDR ...]   # prints the secret, once
    apikey list [--user NAME] [--active]                                      # never prints secrets
    apikey revoke KEY_ID
    apikey reencrypt        # after putting a new first key in API_KEY_ENCRYPTION_KEYS

Exit status: 0 when done; 1 for a key id that does not exist; 2 on bad usage (an unknown user, a bad
scope or IP network). The writes are the services' of ``orders.apikeys``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.apikeys import api_key_create, api_key_list, api_key_reencrypt, api_key_revoke
from orders.errors import ApiKeyNotFound, InvalidApiKey
from orders.templatetags.dead_letters import utc
from spot.errors import ApplicationError

USAGE = 2  # the exit status of bad usage, as argparse's
FAILED = 1


class Command(BaseCommand):
    help = "Create, list and revoke API keys (exit 1: no such key; 2: bad usage)."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", metavar="{create,list,revoke,reencrypt}", required=True)

        create = commands.add_parser("create", help="a new key; prints its id and secret (shown this once)")
        create.add_argument("--user", required=True, help="the username the key acts as")
        create.add_argument("--label", default="", help="what the key is for, e.g. the bot's name")
        create.add_argument("--scopes", required=True, help="read, trade or read,trade")
        create.add_argument(
            "--ip", action="append", default=[], metavar="CIDR", help="allow only this address or network (repeat)"
        )

        listing = commands.add_parser("list", help="keys, newest first (never their secrets)")
        listing.add_argument("--user", help="only this user's keys")
        listing.add_argument("--active", action="store_true", help="leave out revoked keys")

        revoke = commands.add_parser("revoke", help="refuse the key from now on, on every web worker")
        revoke.add_argument("key_id", metavar="KEY_ID")

        commands.add_parser("reencrypt", help="encrypt every secret again under the first encryption key")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"handle_{action}")(**options)

    def handle_create(self, *, user: str, label: str, scopes: str, ip: list[str], **_: Any) -> None:
        owner = _user(user)
        try:
            key, secret = api_key_create(user=owner, label=label, scopes=scopes, allowed_ips=ip)
        except InvalidApiKey as exc:
            option = {"scopes": "--scopes", "allowed_ips": "--ip", "label": "--label"}.get(exc.field or "", "")
            raise CommandError(f"{option}: {exc.message}" if option else exc.message, returncode=USAGE) from None
        out = self.stdout.write
        out(f"key id:  {key.key_id}")
        out(f"secret:  {secret}")
        out(f"user {owner.get_username()}, scopes {key.scopes}, IPs {', '.join(key.allowed_ips) or 'any'}")
        out(self.style.WARNING("The secret is shown this once and cannot be read again: store it now."))

    def handle_list(self, *, user: str | None, active: bool, **_: Any) -> None:
        owner = _user(user) if user else None
        rows = [
            (
                key.key_id,
                key.user.get_username(),
                key.label or "-",
                key.scopes,
                ",".join(key.allowed_ips) or "any",
                utc(key.created_at),
                utc(key.last_used_at),
                utc(key.revoked_at),
            )
            for key in api_key_list(user=owner, include_revoked=not active)
        ]
        if not rows:
            self.stdout.write("no API keys match")
            return
        header = ("key id", "user", "label", "scopes", "IPs", "created", "last used", "revoked")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    def handle_revoke(self, *, key_id: str, **_: Any) -> None:
        try:
            key = api_key_revoke(key_id=key_id)
        except ApiKeyNotFound:
            raise CommandError(f"API key {key_id} does not exist", returncode=FAILED) from None
        except ApplicationError as exc:  # revoked in the DB, but Redis did not answer: say so
            raise CommandError(exc.message, returncode=FAILED) from None
        self.stdout.write(f"revoked {key.key_id} ({key.user.get_username()}, {key.label or 'no label'})")

    def handle_reencrypt(self, **_: Any) -> None:
        self.stdout.write(f"re-encrypted {api_key_reencrypt()} API key secrets under the first encryption key")


def _user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"--user: no user named {username!r}", returncode=USAGE)
    return user
