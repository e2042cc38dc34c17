"""systemd's OnCalendar= syntax (systemd.time(7), "Calendar Events"), checked in Python.

A schedule systemd cannot parse is found only when the timer is started on the server; this check
runs on the controller without systemd. It accepts the forms systemd documents: the shorthands
(daily, weekly, ...), `[weekdays] [[year-]month-day] [hour:minute[:second]] [timezone]` with `*`,
lists, ranges (`..`), repetitions (`/n`) and the last-day form (`~`).
"""

from __future__ import annotations

import re
import zoneinfo

SHORTHANDS = frozenset({
    "minutely", "hourly", "daily", "monthly", "weekly", "yearly", "annually", "quarterly",
    "semiannually",
})
WEEKDAYS = {
    name: index
    for index, names in enumerate(
        (("mon", "monday"), ("tue", "tuesday"), ("wed", "wednesday"), ("thu", "thursday"),
         ("fri", "friday"), ("sat", "saturday"), ("sun", "sunday"))
    )
    for name in names
}
NUMBER = r"[0-9]+"
SECOND = r"[0-9]+(\.[0-9]+)?"


def _component(text: str, low: int, high: int, *, number: str = NUMBER, what: str) -> None:
    """One date/time component: `*`, or a comma list of values, ranges `a..b`, repetitions `/n`."""
    for item in text.split(","):
        value, _, repeat = item.partition("/")
        if repeat and not re.fullmatch(number, repeat):
            raise ValueError(f"'{item}' in the {what}: the repetition after '/' must be a number")
        if value == "*":
            continue
        start, dots, end = value.partition("..")
        for bound in (start, end) if dots else (start,):
            if not re.fullmatch(number, bound):
                raise ValueError(f"'{item}' is not a valid {what}")
            if not low <= float(bound) <= high:
                raise ValueError(f"{what} '{bound}' is out of range ({low}-{high})")


def _weekdays(text: str) -> None:
    for item in text.split(","):
        for name in item.split(".."):
            if name.lower() not in WEEKDAYS:
                raise ValueError(f"'{name}' is not a weekday (Mon, Tue, ... Sun)")


def _date(text: str) -> None:
    last = "~" in text
    parts = re.split(r"[-~]", text)
    if len(parts) == 2:
        parts = ["*", *parts]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"'{text}' is not a date: write year-month-day, e.g. *-*-01 or 2026-*-*")
    if last and text.count("~") != 1:
        raise ValueError(f"'{text}': '~' (days before the month's end) may appear once")
    year, month, day = parts
    _component(year, 1970, 2199, what="year")
    _component(month, 1, 12, what="month")
    _component(day, 1, 31, what="day")


def _time(text: str) -> None:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"'{text}' is not a time: write hour:minute[:second], e.g. 03:00:00")
    _component(parts[0], 0, 23, what="hour")
    _component(parts[1], 0, 59, what="minute")
    if len(parts) == 3:
        _component(parts[2], 0, 59, number=SECOND, what="second")


def _timezone(word: str) -> bool:
    if word == "UTC":
        return True
    try:
        zoneinfo.ZoneInfo(word)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return "/" in word


def check(expression: str) -> None:
    """Raise ValueError saying what is wrong when systemd would refuse `expression`."""
    words = expression.split()
    if not words:
        raise ValueError("is empty")
    if len(words) == 1 and words[0].lower() in SHORTHANDS:
        return
    if len(words) == 2 and words[0].lower() in SHORTHANDS and _timezone(words[1]):
        return
    if len(words) > 1 and _timezone(words[-1]):
        words = words[:-1]
    if words and re.match(r"^[A-Za-z]", words[0]) and ":" not in words[0]:
        _weekdays(words.pop(0))
    if words and "-" in words[0] or words and "~" in words[0]:
        _date(words.pop(0))
    if words and ":" in words[0]:
        _time(words.pop(0))
    if words:
        raise ValueError(f"'{words[0]}' is not understood here")
    if expression.split()[0].lower() in SHORTHANDS:
        raise ValueError(f"'{expression.split()[0]}' cannot be combined with anything but a timezone")
