"""How dead letters are shown to operators: the admin (``{% load dead_letters %}``) and ``manage.py dlq``.

- ``{% dead_letters_waiting %}``: how many wait for an operator (the admin index shows it);
- ``pretty_json``: a payload or a raw field pretty-printed, exactly as it was sent;
- ``utc``: a time to the second, in UTC, as the logs write it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django import template

from orders.deadletters import dead_letters_dead_count

register = template.Library()


@register.simple_tag
def dead_letters_waiting() -> int:
    """Letters still ``dead`` (neither requeued nor discarded): one indexed count."""
    return dead_letters_dead_count()


@register.filter
def utc(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if when else "-"


@register.filter
def pretty_json(text: str) -> str:
    """``text`` indented when it is JSON, else as it is (a dead letter's payload may be garbage).

    A float that Python would print differently (``0.10000000000000000001``) leaves the text as it is:
    a float in a command is often why it was dead-lettered, and the operator must see what was sent.
    """
    exact = True

    def literal(number: str) -> float:
        nonlocal exact
        value = float(number)
        exact = exact and repr(value) == number
        return value

    try:
        data = json.loads(text, parse_float=literal)
    except (ValueError, RecursionError):
        return text
    return json.dumps(data, indent=2, ensure_ascii=False) if exact else text
