"""Tests of the generated date-normalization pairs: every source names exactly its target."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from attnrnn.data.dates import (
    FORMATS,
    MAX_SOURCE_LENGTH,
    DatePair,
    generate_date_pairs,
    ordinal,
    split_date_pairs,
    write_parallel,
)

APRIL_9_2023 = {
    "iso": "2023-04-09",
    "year_slash": "2023/04/09",
    "compact": "20230409",
    "day_dot": "09.04.2023",
    "day_dot_short": "9.4.2023",
    "day_month": "9 April 2023",
    "day_month_upper": "9 APRIL 2023",
    "month_day": "April 9, 2023",
    "month_day_lower": "april 9 2023",
    "mon_day": "Apr 9 2023",
    "mon_day_upper": "APR 9, 2023",
    "mon_dot_day": "Apr. 9, 2023",
    "day_mon_dash": "9-Apr-2023",
    "day_mon_dash_upper": "09-APR-2023",
    "weekday_month_day": "Sunday, April 9, 2023",
    "wkd_day_mon": "Sun, 09 Apr 2023",
    "ordinal_of_month": "9th of April 2023",
    "the_ordinal_of_month": "the 9th of april, 2023",
    "month_ordinal": "April 9th, 2023",
    "weekday_the_ordinal": "Sunday the 9th of April 2023",
}
ORDINAL_NUMBER = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def expected_suffix(number: int) -> str:
    """The English ordinal suffix, spelled out case by case (independent of ``ordinal``)."""
    if number % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


def check_source(source: str, target: str) -> None:
    """Asserts that ``source`` names the date ``target`` in one of the ``FORMATS``, read back
    with that format's strptime pattern, and that its ordinals and weekday are right."""
    day = date.fromisoformat(target)
    assert source.isascii() and len(source) <= MAX_SOURCE_LENGTH
    assert source == source.strip() and "  " not in source
    for match in ORDINAL_NUMBER.finditer(source):
        assert match.group(2).lower() == expected_suffix(int(match.group(1))), source
    without_ordinals = ORDINAL_NUMBER.sub(r"\1", source)
    parsed = set()
    for date_format in FORMATS.values():
        try:
            parsed.add(datetime.strptime(without_ordinals, date_format.strptime_pattern).date())
        except ValueError:
            continue
    assert parsed == {day}, source
    weekday = re.match(r"(mon|tue|wed|thu|fri|sat|sun)[a-z]*\b", source, re.IGNORECASE)
    if weekday:
        assert weekday.group(1).lower() == WEEKDAY_NAMES[day.weekday()], source


def test_each_format_renders_its_documented_example():
    assert {name: f.render(date(2023, 4, 9)) for name, f in FORMATS.items()} == APRIL_9_2023
    assert len(FORMATS) >= 15


@pytest.mark.parametrize("number", [*range(1, 32), 100, 101, 111, 112, 113, 121, 122])
def test_ordinal_suffixes(number):
    assert ordinal(number) == f"{number}{expected_suffix(number)}"


def test_generation_is_deterministic_for_a_seed():
    assert generate_date_pairs(300, seed=3) == generate_date_pairs(300, seed=3)
    assert generate_date_pairs(300, seed=3) != generate_date_pairs(300, seed=4)
    assert split_date_pairs(200, 50, 50, seed=5) == split_date_pairs(200, 50, 50, seed=5)


def test_every_source_names_its_target_and_every_format_appears():
    pairs = generate_date_pairs(4000, seed=0)
    used = set()
    for pair in pairs:
        check_source(pair.source, pair.target)
        day = date.fromisoformat(pair.target)
        assert 1950 <= day.year <= 2049
        formats = {name for name, f in FORMATS.items() if f.render(day) == pair.source}
        assert formats, pair
        used |= formats
    assert used == set(FORMATS)


def test_every_format_reads_back_on_edge_dates():
    edges = [date(1950, 1, 1), date(2049, 12, 31), date(2000, 2, 29), date(2024, 2, 29)]
    edges += [date(2023, 9, day) for day in (1, 2, 3, 11, 12, 13, 21, 22, 23, 30)]
    for day in edges:
        for date_format in FORMATS.values():
            check_source(date_format.render(day), day.isoformat())


def test_sources_map_to_one_date_only():
    """Every format on every day of 16 years: no string is written for two different dates."""
    target_of: dict[str, str] = {}
    for day in days_between(date(1996, 1, 1), date(2011, 12, 31)):
        for date_format in FORMATS.values():
            source = date_format.render(day)
            assert target_of.setdefault(source, day.isoformat()) == day.isoformat(), source
    sampled: dict[str, str] = {}
    for pair in generate_date_pairs(20000, seed=1, start_year=2000, end_year=2003):
        assert sampled.setdefault(pair.source, pair.target) == pair.target, pair


def test_leap_days_only_in_leap_years_and_dates_uniform():
    pairs = generate_date_pairs(20000, seed=2, start_year=2023, end_year=2024)
    days = [date.fromisoformat(pair.target) for pair in pairs]
    leap_days = {day for day in days if (day.month, day.day) == (2, 29)}
    assert leap_days == {date(2024, 2, 29)}
    per_month = Counter(day.month for day in days)
    for month in range(1, 13):
        month_days = (date(2023 + month // 12, month % 12 + 1, 1) - date(2023, month, 1)).days
        expected = len(days) * (month_days + month_days + (month == 2)) / 731
        assert abs(per_month[month] - expected) < 0.15 * expected, month


def test_split_holds_out_dev_and_test_dates():
    train, dev, test = split_date_pairs(3000, 300, 400, seed=7, start_year=2000, end_year=2004)
    assert (len(train), len(dev), len(test)) == (3000, 300, 400)
    train_days = {pair.target for pair in train}
    dev_days, test_days = [pair.target for pair in dev], [pair.target for pair in test]
    assert len(set(dev_days)) == 300 and len(set(test_days)) == 400  # each a different day
    assert not train_days & set(test_days)
    assert not train_days & set(dev_days)
    assert not set(dev_days) & set(test_days)
    for pair in [*train, *dev, *test]:
        check_source(pair.source, pair.target)


def test_split_refuses_to_hold_out_every_date():
    with pytest.raises(ValueError, match="too few"):
        split_date_pairs(1, 200, 166, seed=0, start_year=2023, end_year=2023)
    train, dev, test = split_date_pairs(0, 200, 165, seed=0, start_year=2023, end_year=2023)
    assert not train and len({pair.target for pair in [*dev, *test]}) == 365
    with pytest.raises(ValueError, match="start_year"):
        generate_date_pairs(5, seed=0, start_year=2050, end_year=2049)
    with pytest.raises(ValueError, match="count"):
        generate_date_pairs(-1, seed=0)


def test_write_parallel_writes_matching_lines(tmp_path):
    pairs = [DatePair("9 April 2023", "2023-04-09"), DatePair("the 1st of may, 1999", "1999-05-01")]
    write_parallel(pairs, tmp_path / "dates.src", tmp_path / "dates.tgt")
    sources = (tmp_path / "dates.src").read_text(encoding="utf-8").splitlines()
    targets = (tmp_path / "dates.tgt").read_text(encoding="utf-8").splitlines()
    assert [DatePair(s, t) for s, t in zip(sources, targets, strict=True)] == pairs
