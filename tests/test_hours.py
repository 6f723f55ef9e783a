"""Work hours on their own: parsing, open or closed at a moment, the next change, and the description."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from renderd.hours import ALWAYS, NEVER, HoursError, WorkHours

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def at(day: str, clock: str, second: int = 0) -> datetime:
    """A moment in the week of Monday 2024-01-01, e.g. at("sat", "07:59")."""
    hour, minute = (int(part) for part in clock.split(":"))
    return datetime(2024, 1, 1 + WEEKDAYS.index(day), hour, minute, second)


def open_at(hours: WorkHours, *moments: tuple[str, str]) -> list[bool]:
    return [hours.is_open(at(day, clock)) for day, clock in moments]


def test_none_and_always_are_open_all_the_time() -> None:
    assert WorkHours.parse(None) == ALWAYS
    assert WorkHours.parse("always") == ALWAYS
    assert WorkHours.parse(" Always ") == ALWAYS
    assert WorkHours.parse("00:00-24:00") == ALWAYS
    assert all(ALWAYS.is_open(at(day, "00:00")) and ALWAYS.is_open(at(day, "23:59")) for day in WEEKDAYS)


@pytest.mark.parametrize("text", ["never", "off", "OFF"])
def test_never_and_off_are_closed_all_the_time(text: str) -> None:
    hours = WorkHours.parse(text)
    assert hours == NEVER
    assert not any(hours.is_open(at(day, clock)) for day in WEEKDAYS for clock in ("00:00", "12:00", "23:59"))


def test_a_plain_span_within_one_day() -> None:
    hours = WorkHours.parse("09:00-17:30")
    assert open_at(hours, ("wed", "08:59"), ("wed", "09:00"), ("wed", "17:29"), ("wed", "17:30")) == [
        False, True, True, False,  # the start is inside, the end is not
    ]
    assert hours.is_open(at("sun", "12:00"))  # the same every day


def test_an_overnight_span_runs_into_the_next_morning() -> None:
    hours = WorkHours.parse("19:00-08:00")
    assert open_at(hours, ("fri", "18:59"), ("fri", "19:00"), ("fri", "23:59"), ("sat", "00:00"), ("sat", "07:59"),
                   ("sat", "08:00"), ("sat", "12:00")) == [False, True, True, True, True, False, False]
    # Sunday night carries over into Monday morning: the week wraps
    assert open_at(hours, ("sun", "23:00"), ("mon", "03:00"), ("mon", "08:00")) == [True, True, False]


def test_several_spans_and_24_00_as_an_end() -> None:
    hours = WorkHours.parse("12:00-13:00, 19:00-24:00")
    assert open_at(hours, ("tue", "11:59"), ("tue", "12:30"), ("tue", "13:00"), ("tue", "23:59"), ("wed", "00:00")) == [
        False, True, False, True, False,
    ]
    assert WorkHours.parse("9:00-10:00").is_open(at("mon", "09:30"))  # one-digit hours are fine


def test_overlapping_and_touching_spans_merge() -> None:
    assert WorkHours.parse("10:00-12:00,11:00-13:00") == WorkHours.parse("10:00-13:00")
    assert WorkHours.parse("10:00-12:00,12:00-13:00") == WorkHours.parse("10:00-13:00")
    assert WorkHours.parse("19:00-24:00,00:00-08:00") == WorkHours.parse("19:00-08:00")


def test_seconds_and_time_zones_do_not_matter() -> None:
    hours = WorkHours.parse("19:00-08:00")
    assert not hours.is_open(at("mon", "18:59", second=59))
    aware = datetime(2024, 1, 6, 7, 30, tzinfo=timezone(timedelta(hours=-5)))  # a Saturday morning, local time
    assert hours.is_open(aware)


def test_a_mapping_per_weekday() -> None:
    hours = WorkHours.parse({"mon-fri": "19:00-08:00", "sat": "always", "sun": "always"})
    assert open_at(hours, ("mon", "07:00"), ("mon", "12:00"), ("wed", "20:00"), ("sat", "12:00"), ("sun", "23:59")) == [
        False,  # Sunday is "always", which ends at midnight: Monday morning is not carried over
        False, True, True, True,
    ]


def test_an_overnight_span_in_a_mapping_belongs_to_the_day_it_starts() -> None:
    hours = WorkHours.parse({"sat": "19:00-08:00", "sun": "never"})
    # Sunday is closed by its own key, but Saturday's night still runs into its morning
    assert open_at(hours, ("sat", "18:00"), ("sat", "19:00"), ("sun", "00:00"), ("sun", "07:59"), ("sun", "08:00")) == [
        False, True, True, True, False,
    ]
    assert not hours.is_open(at("fri", "20:00"))  # not named, no default: closed
    assert not hours.is_open(at("mon", "00:30"))


def test_sunday_night_in_a_mapping_runs_into_monday() -> None:
    hours = WorkHours.parse({"sun": "22:00-06:00"})
    assert open_at(hours, ("sun", "21:59"), ("sun", "22:00"), ("mon", "05:59"), ("mon", "06:00"), ("sat", "23:00")) == [
        False, True, True, False, False,
    ]


def test_default_covers_days_not_named() -> None:
    hours = WorkHours.parse({"default": "19:00-08:00", "sat-sun": "always"})
    assert hours == WorkHours.parse({"mon-fri": "19:00-08:00", "sat": "always", "sun": "always"})
    assert WorkHours.parse({"default": "always", "wed": "never"}).is_open(at("tue", "12:00"))
    assert not WorkHours.parse({"default": "always", "wed": "never"}).is_open(at("wed", "12:00"))


def test_ranges_wrap_lists_and_yaml_booleans() -> None:
    weekend = WorkHours.parse({"fri-mon": "always"})  # wraps past Sunday
    days = [(day, "12:00") for day in ("thu", "fri", "sun", "mon", "tue")]
    assert open_at(weekend, *days) == [False, True, True, True, False]
    assert WorkHours.parse({"mon,wed": "always"}) == WorkHours.parse({"mon": "always", "wed": "always"})
    # YAML reads a bare `off` as False and `on` as True
    assert WorkHours.parse({"default": True, "sun": False}) == WorkHours.parse({"default": "always", "sun": "off"})
    assert WorkHours.parse(False) == NEVER
    assert WorkHours.parse({"MON": "always"}) == WorkHours.parse({"mon": "always"})


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("25:00-08:00", "25:00"),
        ("19:00-24:30", "24:30"),
        ("24:00-08:00", "24:00"),
        ("19:60-08:00", "19:60"),
        ("7pm", "7pm"),
        ("7pm-8am", "7pm"),
        ("19:00", "19:00"),
        ("08:00-08:00", "08:00-08:00"),
        ("", '""'),
        ("sometimes", "sometimes"),
        ("19:00-08:00,", "19:00-08:00,"),
        ({"mon-fry": "always"}, "mon-fry"),
        ({"monday": "always"}, "monday"),
        ({"mon-fri": "always", "fri": "never"}, "fri"),
        ({"sat": "7pm"}, "7pm"),
        ({"sat": None}, "sat"),
        (42, "42"),
    ],
)
def test_bad_hours_raise_one_line_naming_the_text(value: object, names: str) -> None:
    with pytest.raises(HoursError) as caught:
        WorkHours.parse(value)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    assert names in message
    assert isinstance(caught.value, ValueError)


def test_next_change_within_a_day_and_across_days() -> None:
    hours = WorkHours.parse("19:00-08:00")
    assert hours.next_change(at("mon", "12:30", second=15)) == at("mon", "19:00")
    assert hours.next_change(at("mon", "19:00")) == at("tue", "08:00")  # at a change: the one after it
    assert hours.next_change(at("mon", "23:59", second=59)) == at("tue", "08:00")
    # the week wraps: from Sunday night to Monday morning
    assert hours.next_change(at("sun", "20:00")) == datetime(2024, 1, 8, 8, 0)


def test_next_change_skips_closed_days_and_midnight_joins() -> None:
    weekends = WorkHours.parse({"sat-sun": "always"})
    assert weekends.next_change(at("tue", "10:00")) == at("sat", "00:00")
    assert weekends.next_change(at("sat", "10:00")) == datetime(2024, 1, 8, 0, 0)  # not at Saturday midnight
    one_night = WorkHours.parse({"sat": "19:00-08:00"})
    assert one_night.next_change(at("sun", "09:00")) == datetime(2024, 1, 13, 19, 0)  # a week on
    # open from Friday evening through to Monday morning, wrapping the week
    long_weekend = WorkHours.parse({"fri": "19:00-24:00", "sat-sun": "always", "mon": "00:00-08:00"})
    assert long_weekend.next_change(at("fri", "20:00")) == datetime(2024, 1, 8, 8, 0)


def test_next_change_agrees_with_is_open_minute_by_minute() -> None:
    hours = WorkHours.parse({"mon-fri": "12:00-13:00,19:00-08:00", "sat": "10:00-02:00", "sun": "never"})
    moment = at("mon", "00:00")
    end = moment + timedelta(days=8)
    while moment < end:
        change = hours.next_change(moment)
        assert change is not None and change > moment
        assert hours.is_open(change) != hours.is_open(moment)
        assert hours.is_open(change - timedelta(minutes=1)) == hours.is_open(moment)
        moment = change


def test_next_change_is_none_when_nothing_changes() -> None:
    assert ALWAYS.next_change(at("wed", "10:00")) is None
    assert NEVER.next_change(at("wed", "10:00")) is None
    assert WorkHours.parse({"default": "always"}).next_change(at("wed", "10:00")) is None


def test_next_change_keeps_the_time_zone_and_wall_clock() -> None:
    try:
        paris = ZoneInfo("Europe/Paris")
    except ZoneInfoNotFoundError:
        pytest.skip("no time zone database on this machine")
    # the night the clocks go forward (Sunday 2024-03-31): the change is still at 08:00 local time
    change = WorkHours.parse("19:00-08:00").next_change(datetime(2024, 3, 30, 22, 0, tzinfo=paris))
    assert change == datetime(2024, 3, 31, 8, 0, tzinfo=paris)
    assert change is not None and change.tzinfo is paris


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "always"),
        ("never", "never"),
        ("19:00-08:00", "19:00-08:00"),
        ("12:00-13:00,19:00-08:00", "12:00-13:00,19:00-08:00"),
        ({"mon-fri": "19:00-08:00", "sat": "always", "sun": "always"}, "mon-fri 19:00-08:00, sat-sun always"),
        ({"mon-fri": "19:00-08:00"}, "mon-fri 19:00-08:00"),
        ({"sat": "19:00-08:00", "sun": "never"}, "sat 19:00-08:00"),
        ({"sun": "22:00-06:00"}, "sun 22:00-06:00"),
        ({"default": "09:00-17:00", "wed": "never"}, "mon-tue 09:00-17:00, thu-sun 09:00-17:00"),
        ({"mon": "22:00-24:00", "tue": "00:00-23:00"}, "mon 22:00-24:00, tue 00:00-23:00"),  # not "22:00-23:00"
        ({"fri": "19:00-08:00", "sat": "always"}, "fri 19:00-24:00, sat always"),
    ],
)
def test_describe(value: str | dict[str, str] | None, text: str) -> None:
    assert WorkHours.parse(value).describe() == text


@pytest.mark.parametrize(
    "value",
    ["19:00-08:00", "12:00-13:00,19:00-08:00", "08:00-18:00", "never", "always", "22:00-24:00"],
)
def test_describe_of_one_rule_for_every_day_parses_back(value: str) -> None:
    hours = WorkHours.parse(value)
    assert WorkHours.parse(hours.describe()) == hours


def test_spans_are_kept_within_their_day() -> None:
    hours = WorkHours.parse({"fri": "19:00-08:00"})
    assert hours.days[4] == ((19 * 60, 24 * 60),)
    assert hours.days[5] == ((0, 8 * 60),)
    with pytest.raises(ValueError):
        WorkHours(((),) * 6)
    with pytest.raises(ValueError):
        WorkHours((((19 * 60, 8 * 60),),) + ((),) * 6)
