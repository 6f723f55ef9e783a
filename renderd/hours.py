"""Work hours: when a node may render, as spans of the local week.

Pure: nothing here reads the clock; every question takes the moment it is about, so the daemon
decides what "now" is and the tests can ask about any weekday and minute.

Spans are stored per weekday and clipped to that day: an overnight span such as Friday
19:00-08:00 is kept as Friday 19:00-24:00 plus Saturday 00:00-08:00. Two spellings of the same
hours therefore compare equal, and `is_open` only ever looks at one day.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = 24 * 60
WEEK = 7 * DAY
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Span = tuple[int, int]  # (start_minute, end_minute) within one day, 0 <= start < end <= 1440

_TIME = re.compile(r"(\d{1,2}):(\d{2})")


class HoursError(ValueError):
    """Work hours that cannot be understood; the message is one line and names the bad text."""


@dataclass(frozen=True)
class WorkHours:
    """Open spans per weekday (0=Monday..6=Sunday), sorted and merged, each within its own day."""

    days: tuple[tuple[Span, ...], ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError(f"work hours need 7 weekdays, got {len(self.days)}")
        for spans in self.days:
            for start, end in spans:
                if not 0 <= start < end <= DAY:
                    raise ValueError(f"span {start}-{end} is not within one day")
        # normalised here, not only in parse, so that equal hours compare equal however they were built
        object.__setattr__(self, "days", tuple(_merge(spans) for spans in self.days))

    @classmethod
    def parse(cls, value: str | Mapping[str, object] | bool | None) -> WorkHours:
        """Read work hours as a command line or a node settings file gives them.

        - None: always open.
        - "19:00-08:00", "12:00-13:00,19:00-08:00", "always", "never"/"off": the same every day.
        - {"mon-fri": "19:00-08:00", "sat": "always", "default": "never"}: per weekday; days not
          named take `default`, or are closed without one.
        A span that ends at or before its start runs past midnight and belongs to the day it starts.
        Booleans are accepted because YAML reads a bare `off` as False (and `on` as True).
        """
        if value is None:
            return ALWAYS
        if isinstance(value, Mapping):
            return cls(_parse_mapping(value))
        starts = _parse_day_value(value, str(value))
        return cls(_spread([starts] * 7))

    def is_open(self, moment: datetime) -> bool:
        """Whether the node may render at `moment` (local wall-clock time; seconds are ignored)."""
        minute = moment.hour * 60 + moment.minute
        return any(start <= minute < end for start, end in self.days[moment.weekday()])

    def next_change(self, moment: datetime) -> datetime | None:
        """The first minute after `moment` at which `is_open` flips; None when it never does.

        The answer is `moment`'s wall-clock time moved on by whole minutes, with the same tzinfo:
        work hours are wall-clock times, so "19:00" stays 19:00 across a daylight saving change.
        """
        points = self._flips()
        if not points:
            return None
        now = moment.weekday() * DAY + moment.hour * 60 + moment.minute
        # (p - now - 1) % WEEK + 1 lies in 1..WEEK: strictly later, at most a week ahead
        ahead = min((point - now - 1) % WEEK + 1 for point in points)
        return moment.replace(second=0, microsecond=0) + timedelta(minutes=ahead)

    def describe(self) -> str:
        """Short text for people, e.g. "19:00-08:00" or "mon-fri 19:00-08:00, sat-sun always".

        Overnight spans are shown from the day they start; days with nothing starting are left out.
        """
        if self == ALWAYS:
            return "always"
        if not any(self.days):
            return "never"
        texts = [self._day_text(day) for day in range(7)]
        for day in range(7):
            texts[day] = _like_day_before(texts[day], texts[day - 1], texts[(day + 1) % 7])
        if len(set(texts)) == 1:
            return texts[0]
        groups: list[tuple[int, int, str]] = []  # (first day, last day, text) for runs of equal days
        for day, text in enumerate(texts):
            if groups and groups[-1][2] == text and groups[-1][1] == day - 1:
                groups[-1] = (groups[-1][0], day, text)
            else:
                groups.append((day, day, text))
        parts = []
        for first, last, text in groups:
            if text == "never":
                continue
            names = DAY_NAMES[first] if first == last else f"{DAY_NAMES[first]}-{DAY_NAMES[last]}"
            parts.append(f"{names} {text}")
        return ", ".join(parts)

    def _day_text(self, day: int) -> str:
        """What starts on `day`: its spans, with a morning carried over from the evening before left out."""
        spans = list(self.days[day])
        if spans == [(0, DAY)]:
            return "always"
        if spans and spans[0][0] == 0 and self._continues_into(day - 1, spans[0][1]):
            spans.pop(0)
        morning = self.days[(day + 1) % 7][0] if self.days[(day + 1) % 7] else None
        texts = []
        for start, end in spans:
            if end == DAY and morning is not None and morning[0] == 0 and self._continues_into(day, morning[1]):
                end = morning[1]
            texts.append(f"{_clock(start)}-{_clock(end)}")
        return ",".join(texts) or "never"

    def _continues_into(self, day: int, morning_end: int) -> bool:
        """Whether `day`'s last span runs through midnight into a next-day span ending at `morning_end`.

        Only when the joined span reads unambiguously as overnight (its end before its start) and
        neither side is a whole day, which is shown as "always" instead.
        """
        spans = self.days[day % 7]
        if not spans or morning_end == DAY:
            return False
        start, end = spans[-1]
        return end == DAY and 0 < start and morning_end < start

    def _flips(self) -> list[int]:
        """Minutes of the week (from Monday 00:00) at which open turns closed or closed turns open."""
        week = _merge([(day * DAY + s, day * DAY + e) for day, spans in enumerate(self.days) for s, e in spans])
        if not week or week == ((0, WEEK),):
            return []
        points = {point for span in week for point in span}
        if week[0][0] == 0 and week[-1][1] == WEEK:
            points -= {0, WEEK}  # open across Sunday midnight into Monday: no flip there
        return sorted(point % WEEK for point in points)


def _merge(spans: list[Span] | tuple[Span, ...]) -> tuple[Span, ...]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _spread(starts: list[list[tuple[int, int]]]) -> tuple[tuple[Span, ...], ...]:
    """Clip spans given by the day they start (end <= start: past midnight) into per-day spans."""
    days: list[list[Span]] = [[] for _ in range(7)]
    for day, spans in enumerate(starts):
        for start, end in spans:
            if end > start:
                days[day].append((start, end))
            else:
                days[day].append((start, DAY))
                if end > 0:
                    days[(day + 1) % 7].append((0, end))  # Sunday night runs into Monday morning
    return tuple(_merge(spans) for spans in days)


def _parse_day_value(value: object, where: str) -> list[tuple[int, int]]:
    """One day's hours as spans from the day they start; an end <= start means past midnight."""
    if isinstance(value, bool):
        return [(0, DAY)] if value else []
    if not isinstance(value, str):
        raise HoursError(f'work hours "{where}": expected text such as "19:00-08:00", "always" or "never"')
    text = value.strip().lower()
    if text == "always":
        return [(0, DAY)]
    if text in ("never", "off"):
        return []
    if not text:
        raise HoursError(f'work hours "{where}": empty (use "always", "never" or a span such as "19:00-08:00")')
    return [_parse_span(part.strip(), where) for part in text.split(",")]


def _parse_span(text: str, whole: str) -> tuple[int, int]:
    start_text, dash, end_text = text.partition("-")
    if not dash:
        raise HoursError(f'work hours "{whole}": "{text}" is not a span such as 19:00-08:00')
    start = _parse_time(start_text.strip(), whole, end=False)
    end = _parse_time(end_text.strip(), whole, end=True)
    if start == end:  # 00:00-24:00 is a whole day, so only a literal repeat is meaningless
        raise HoursError(f'work hours "{whole}": span "{text}" starts and ends at the same time')
    return (start, end)


def _parse_time(text: str, whole: str, end: bool) -> int:
    match = _TIME.fullmatch(text)
    if match is None:
        raise HoursError(f'work hours "{whole}": "{text}" is not a time as HH:MM (24-hour clock)')
    hour, minute = int(match[1]), int(match[2])
    if end and (hour, minute) == (24, 0):
        return DAY  # 24:00 ends a span at midnight
    if hour > 23 or minute > 59:
        raise HoursError(f'work hours "{whole}": "{text}" is not a time of day (00:00-23:59, or 24:00 as an end)')
    return hour * 60 + minute


def _parse_mapping(value: Mapping[str, object]) -> tuple[tuple[Span, ...], ...]:
    starts: list[list[tuple[int, int]] | None] = [None] * 7
    default: list[tuple[int, int]] = []
    for key, day_value in value.items():
        spans = _parse_day_value(day_value, f"{key}: {day_value}")
        name = str(key).strip().lower()
        if name == "default":
            default = spans
            continue
        for day in _parse_days(name, str(key)):
            if starts[day] is not None:
                raise HoursError(f'work hours: {DAY_NAMES[day]} is named twice (in "{key}")')
            starts[day] = spans
    return _spread([default if spans is None else spans for spans in starts])


def _parse_days(name: str, key: str) -> list[int]:
    """Weekdays named by a key: "sat", "mon-fri", "fri-mon" (wraps past Sunday) or "mon,wed"."""
    days: list[int] = []
    for part in name.split(","):
        first, dash, last = (piece.strip() for piece in part.partition("-"))
        if first not in DAY_NAMES or (dash and last not in DAY_NAMES):
            raise HoursError(
                f'work hours: unknown day "{key}" (use mon tue wed thu fri sat sun, a range like mon-fri, or default)'
            )
        start = DAY_NAMES.index(first)
        stop = DAY_NAMES.index(last) if dash else start
        days.extend((start + offset) % 7 for offset in range((stop - start) % 7 + 1))
    return days


def _like_day_before(text: str, before: str, after: str) -> str:
    """Show "19:00-24:00" before a whole open day as the day before shows it, e.g. "19:00-08:00".

    Ending at midnight or at 08:00 is the same when the next day is open anyway; reading it like
    its neighbour lets "mon-fri 19:00-08:00, sat-sun always" come out as it went in.
    """
    if after != "always" or not text.endswith("-24:00"):
        return text
    start, _, end = before.rpartition(",")[2].partition("-")
    overnight = end < start  # HH:MM compares as text; only an overnight end fits inside the open day
    if overnight and before.rpartition("-")[0] == text.rpartition("-")[0]:
        return before
    return text


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# built last: the class needs the helpers above
ALWAYS = WorkHours((((0, DAY),),) * 7)
NEVER = WorkHours(((),) * 7)
