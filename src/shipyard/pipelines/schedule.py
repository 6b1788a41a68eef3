"""Cron schedules for RecurringRun: 5 fields (minute first) or KFP's 6 (seconds first)."""

from __future__ import annotations

from datetime import datetime


def parse_schedule(text: str) -> str:
    """The schedule as croniter reads it (croniter puts seconds last); raises ValueError."""
    from croniter import croniter

    fields = str(text).split()
    if len(fields) == 6:
        fields = [*fields[1:], fields[0]]
    elif len(fields) != 5:
        raise ValueError(
            f"{text!r} is not a cron schedule: use 5 fields (minute hour day month weekday) "
            "or 6 with seconds first, e.g. '*/10 * * * * *'"
        )
    expr = " ".join(fields)
    if not croniter.is_valid(expr):
        raise ValueError(f"{text!r} is not a valid cron schedule")
    return expr


def next_after(text: str, after: datetime) -> datetime:
    from croniter import croniter

    nxt: datetime = croniter(parse_schedule(text), after).get_next(datetime)
    return nxt
