"""Tests of the generated date-normalization pairs: every source names exactly its target."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from attnrnn.data.dates import (
    FORMATS,
    MAX_SOURCE_LENGTH,
    MONTHS,
    DateLinks,
    DatePair,
    date_links,
    generate_date_pairs,
    ordinal,
    split_date_pairs,
    write_parallel,
)
from attnrnn.diagnostics import alignment_error_rate, argmax_links

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


# Reference alignments

YEAR, MONTH, DAY = (0, 1, 2, 3), (5, 6), (8, 9)  # target positions in YYYY-MM-DD


def check_links(source: str, target: str, links: DateLinks) -> None:
    """Asserts that every link joins a target field to source characters that spell it."""
    day = date.fromisoformat(target)
    assert links.sure <= links.possible
    assert all(0 <= t < len(target) and 0 <= s < len(source) for t, s in links.possible)
    assert not {t for t, _ in links.possible} & {4, 7}  # the "-" separators
    assert {t for t, _ in links.possible} == {*YEAR, *MONTH, *DAY}  # every digit is linked
    # Sure links copy a digit: one-to-one, and the source character is the target's.
    assert len({t for t, _ in links.sure}) == len({s for _, s in links.sure}) == len(links.sure)
    assert all(source[s] == target[t] for t, s in links.sure), (source, sorted(links.sure))
    # The year's four digits copy the source's year, digit by digit, in order.
    year_sources = [s for t, s in sorted(links.sure) if t in YEAR]
    assert len(year_sources) == 4 and year_sources == list(
        range(year_sources[0], year_sources[0] + 4)
    )
    assert "".join(source[s] for s in year_sources) == f"{day.year:04d}"
    for field, number in ((MONTH, day.month), (DAY, day.day)):
        sure = [s for t, s in sorted(links.sure) if t in field]
        possible = sorted({s for t, s in links.possible - links.sure if t in field})
        if sure:  # written as a number: its digits, then padding zeros linked to them
            assert int("".join(source[s] for s in sure)) == number
            assert all(target[t] == "0" for t, s in links.possible - links.sure if t in field)
            assert set(possible) <= set(sure)
        else:  # a month name, linked as a whole word
            assert field == MONTH
            word = source[possible[0] : possible[-1] + 1]
            assert possible == list(range(possible[0], possible[-1] + 1))
            assert word.lower() in {MONTHS[number - 1].lower(), MONTHS[number - 1][:3].lower()}
            assert {t for t, s in links.possible if s in possible} == set(MONTH)


def test_links_of_a_written_out_date_by_hand():
    source = "Sunday, April 9, 2023"  # April at 8-12, 9 at 14, 2023 at 17-20
    links = date_links(DatePair(source, "2023-04-09"))
    assert links.sure == {(0, 17), (1, 18), (2, 19), (3, 20), (9, 14)}
    month_name = {(t, s) for t in MONTH for s in range(8, 13)}
    assert links.possible == links.sure | month_name | {(8, 14)}
    compact = date_links(DatePair("20230409", "2023-04-09"))
    assert (
        compact.sure
        == compact.possible
        == {(0, 0), (1, 1), (2, 2), (3, 3), (5, 4), (6, 5), (8, 6), (9, 7)}
    )


def test_every_format_renders_its_text_with_links():
    for day in (date(2023, 4, 9), date(1999, 12, 31), date(2001, 1, 1), date(2024, 2, 29)):
        for date_format in FORMATS.values():
            source, links = date_format.render_with_links(day)
            assert source == date_format.render(day)
            check_links(source, day.isoformat(), links)


def test_links_of_generated_pairs_spell_their_fields():
    pairs = generate_date_pairs(600, seed=11)
    used = set()
    for pair in pairs:
        check_links(pair.source, pair.target, date_links(pair))
        used |= {
            name
            for name, f in FORMATS.items()
            if f.render(date.fromisoformat(pair.target)) == pair.source
        }
    assert used == set(FORMATS)
    for pair in split_date_pairs(100, 50, 50, seed=3)[2]:
        check_links(pair.source, pair.target, date_links(pair))


def test_attention_on_the_sure_links_has_no_alignment_error():
    pair = DatePair("the 21st of march, 1987", "1987-03-21")
    links = date_links(pair)
    attention = [[0.0] * len(pair.source) for _ in pair.target]
    for t, s in links.possible:  # uniform over the possible links, sure ones weighted up
        attention[t][s] = 1.0 + 10.0 * ((t, s) in links.sure)
    predicted = {(t, s) for t, s in argmax_links(attention) if t not in (4, 7)}
    assert predicted >= links.sure
    assert alignment_error_rate(predicted, links.sure, links.possible) == 0.0


def test_date_links_refuses_a_source_no_format_writes():
    with pytest.raises(ValueError, match="no date format"):
        date_links(DatePair("April 10, 2023", "2023-04-09"))


def test_date_links_in_pharaoh_order():
    from attnrnn.data.dates import DatePair, date_links

    links = date_links(DatePair("17.11.1989", "1989-11-17"))
    alignment = links.pharaoh()
    assert alignment.sure == {(source, target) for target, source in links.sure}
    assert alignment.possible == {(source, target) for target, source in links.possible}
    assert (6, 0) in alignment.sure  # the year's first digit "1" of the source -> target 0
