"""Generated date-normalization pairs: human-written dates -> ISO 8601 (for the demo and tests).

A source is one calendar date written in one of the named ``FORMATS`` ("9 April 2023",
"Sunday, April 9, 2023", "the 9th of april, 2023", "09.04.2023", ...); its target is the
same date as ``YYYY-MM-DD`` ("2023-04-09"). A character-level translation model must learn
to read month names, ordinals and field orders, and its attention should visibly jump from
the year to the month to the day while it writes the target.

Every source names exactly one date, so the source -> target mapping is a function:

- numeric dates are either year-first (``2023/04/09``, ``20230409``, ``2023-04-09``) or
  day-first with dots (``09.04.2023``, ``9.4.2023``); no format puts the month first in
  digits, so "04/09" never has to be guessed;
- years always have four digits (no "'23": its century would be a guess);
- month and weekday names are English, written out here (no locale is consulted).

Sources are plain ASCII with single spaces and at most ``MAX_SOURCE_LENGTH`` characters.

The reference alignment of a pair is known by construction (:func:`date_links`): each
character of the ISO target comes from known source characters (the year's digits from the
year, the month's from the month number or name, the day's from the day number).
"""

from __future__ import annotations

import os
import random
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from attnrnn.data.alignments import Alignment

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_SOURCE_LENGTH = 40  # the longest format, "Wednesday the 30th of September 2043", has 36
FIRST_YEAR, LAST_YEAR = 1000, 9999  # four-digit years only


_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}


@dataclass(frozen=True)
class DatePair:
    source: str  # "Sunday, April 9, 2023"
    target: str  # "2023-04-09"


def ordinal(number: int) -> str:
    """``number`` with its English ordinal suffix: 1st, 2nd, 3rd, 4th, 11th, 12th, 21st."""
    suffix = "th" if 11 <= number % 100 <= 13 else _SUFFIXES.get(number % 10, "th")
    return f"{number}{suffix}"


def _fields(day: date) -> dict[str, str]:
    """The pieces a ``DateFormat.template`` may use, for ``day``."""
    month, weekday = MONTHS[day.month - 1], WEEKDAYS[day.weekday()]
    return {
        "day": str(day.day),  # 9
        "dd": f"{day.day:02d}",  # 09
        "ordinal": ordinal(day.day),  # 9th
        "month": month,  # April
        "mon": month[:3],  # Apr
        "month_number": str(day.month),  # 4
        "mm": f"{day.month:02d}",  # 04
        "yyyy": f"{day.year:04d}",  # 2023
        "weekday": weekday,  # Sunday
        "wkd": weekday[:3],  # Sun
    }


@dataclass(frozen=True)
class DateFormat:
    """One way of writing a date.

    ``template`` is a ``str.format`` string over the fields of ``_fields``; ``case`` turns
    the result to lower or upper case ("title" keeps names capitalized). ``strptime_pattern``
    reads the rendered text back with ``datetime.strptime`` once ordinal suffixes are removed
    ("9th" -> "9"); it lets tests check every format against an independent parser.
    """

    template: str
    strptime_pattern: str
    case: Literal["title", "lower", "upper"] = "title"

    def render(self, day: date) -> str:
        text = self.template.format(**_fields(day))
        return self._cased(text)

    def _cased(self, text: str) -> str:
        if self.case == "lower":
            return text.lower()
        if self.case == "upper":
            return text.upper()
        return text

    def render_with_links(self, day: date) -> tuple[str, DateLinks]:
        """``render(day)`` and the reference alignment of that source to ``day.isoformat()``."""
        text, spans = _render_spans(self.template, _fields(day))
        return self._cased(text), _links_from_spans(spans)  # ASCII casing keeps positions


@dataclass(frozen=True)
class DateLinks:
    """The reference alignment of one pair: ``(target_index, source_index)`` links from
    characters of the ISO target ``YYYY-MM-DD`` to characters of the source.

    ``sure`` links join a target digit to the source digit it copies: the year's four
    digits, and the month's and day's digits written as numbers (2-digit fields digit by
    digit; "9" gives the sure link day-units -> "9"). ``possible`` (always ⊇ ``sure``, as in
    Och & Ney's alignment error rate) adds the ambiguous ones: both month digits to every
    letter of a month name ("April", "APR"), and a zero the source leaves out ("9" -> "09")
    to the digit it pads. The target's "-" separators, and weekdays and ordinal suffixes in
    the source, have no links.
    """

    sure: frozenset[tuple[int, int]]
    possible: frozenset[tuple[int, int]]

    def pharaoh(self) -> Alignment:
        """The same links in Pharaoh order, (source, target), to write with
        :func:`attnrnn.data.alignments.write_links`."""
        return Alignment(
            frozenset((source, target) for target, source in self.sure),
            frozenset((source, target) for target, source in self.possible),
        )


# Target character positions of each ISO field: YYYY-MM-DD.
_TARGET_POSITIONS = {"year": (0, 1, 2, 3), "month": (5, 6), "day": (8, 9)}
# Field of ``_fields`` -> (the ISO field it gives, how it is written).
_FIELD_ROLES = {
    "yyyy": ("year", "digits"),
    "mm": ("month", "digits"),
    "month_number": ("month", "digits"),
    "month": ("month", "name"),
    "mon": ("month", "name"),
    "dd": ("day", "digits"),
    "day": ("day", "digits"),
    "ordinal": ("day", "ordinal"),  # digits and a 2-letter suffix: "21st"
}
_FORMATTER = string.Formatter()


def _render_spans(template: str, fields: dict[str, str]) -> tuple[str, dict[str, range]]:
    """``template.format(**fields)`` and the source positions each field was written to."""
    pieces, spans, position = [], {}, 0
    for literal, name, _spec, _conversion in _FORMATTER.parse(template):
        pieces.append(literal)
        position += len(literal)
        if name is not None:
            value = fields[name]
            spans[name] = range(position, position + len(value))
            pieces.append(value)
            position += len(value)
    return "".join(pieces), spans


def _links_from_spans(spans: dict[str, range]) -> DateLinks:
    """The :class:`DateLinks` of a source whose fields were written to ``spans``."""
    sure: set[tuple[int, int]] = set()
    possible: set[tuple[int, int]] = set()
    for name, span in spans.items():
        if name not in _FIELD_ROLES:
            continue  # weekday names: not in the target
        iso_field, written = _FIELD_ROLES[name]
        targets = _TARGET_POSITIONS[iso_field]
        if written == "name":
            possible.update((target, source) for target in targets for source in span)
            continue
        digits = span[:-2] if written == "ordinal" else span
        # Right-aligned: units to units; target digits left of the source's are padding.
        for offset in range(1, len(targets) + 1):
            if offset <= len(digits):
                sure.add((targets[-offset], digits[-offset]))
            else:
                possible.update((targets[-offset], source) for source in digits)
    return DateLinks(frozenset(sure), frozenset(possible | sure))


# Examples are for Sunday, 9 April 2023.
FORMATS: dict[str, DateFormat] = {
    "iso": DateFormat("{yyyy}-{mm}-{dd}", "%Y-%m-%d"),  # 2023-04-09
    "year_slash": DateFormat("{yyyy}/{mm}/{dd}", "%Y/%m/%d"),  # 2023/04/09
    "compact": DateFormat("{yyyy}{mm}{dd}", "%Y%m%d"),  # 20230409
    "day_dot": DateFormat("{dd}.{mm}.{yyyy}", "%d.%m.%Y"),  # 09.04.2023
    "day_dot_short": DateFormat("{day}.{month_number}.{yyyy}", "%d.%m.%Y"),  # 9.4.2023
    "day_month": DateFormat("{day} {month} {yyyy}", "%d %B %Y"),  # 9 April 2023
    "day_month_upper": DateFormat("{day} {month} {yyyy}", "%d %B %Y", "upper"),  # 9 APRIL 2023
    "month_day": DateFormat("{month} {day}, {yyyy}", "%B %d, %Y"),  # April 9, 2023
    "month_day_lower": DateFormat("{month} {day} {yyyy}", "%B %d %Y", "lower"),  # april 9 2023
    "mon_day": DateFormat("{mon} {day} {yyyy}", "%b %d %Y"),  # Apr 9 2023
    "mon_day_upper": DateFormat("{mon} {day}, {yyyy}", "%b %d, %Y", "upper"),  # APR 9, 2023
    "mon_dot_day": DateFormat("{mon}. {day}, {yyyy}", "%b. %d, %Y"),  # Apr. 9, 2023
    "day_mon_dash": DateFormat("{day}-{mon}-{yyyy}", "%d-%b-%Y"),  # 9-Apr-2023
    "day_mon_dash_upper": DateFormat("{dd}-{mon}-{yyyy}", "%d-%b-%Y", "upper"),  # 09-APR-2023
    "weekday_month_day": DateFormat(
        "{weekday}, {month} {day}, {yyyy}", "%A, %B %d, %Y"
    ),  # Sunday, April 9, 2023
    "wkd_day_mon": DateFormat("{wkd}, {dd} {mon} {yyyy}", "%a, %d %b %Y"),  # Sun, 09 Apr 2023
    "ordinal_of_month": DateFormat(
        "{ordinal} of {month} {yyyy}", "%d of %B %Y"
    ),  # 9th of April 2023
    "the_ordinal_of_month": DateFormat(
        "the {ordinal} of {month}, {yyyy}", "the %d of %B, %Y", "lower"
    ),  # the 9th of april, 2023
    "month_ordinal": DateFormat("{month} {ordinal}, {yyyy}", "%B %d, %Y"),  # April 9th, 2023
    "weekday_the_ordinal": DateFormat(
        "{weekday} the {ordinal} of {month} {yyyy}", "%A the %d of %B %Y"
    ),  # Sunday the 9th of April 2023
}
_FORMAT_LIST = tuple(FORMATS.values())


def make_pair(day: date, rng: random.Random) -> DatePair:
    """``day`` written in a format drawn uniformly from ``FORMATS``, and in ISO 8601."""
    return DatePair(rng.choice(_FORMAT_LIST).render(day), day.isoformat())


def date_links(pair: DatePair) -> DateLinks:
    """The reference alignment of ``pair``, a source written in one of ``FORMATS`` and its
    ISO target (as every generator here makes them, or as read back from their files).

    The format is found by rendering the target date in each; when several render the same
    text (``09.04.2023`` is both "day_dot" and "day_dot_short" on some days), their sure
    links are intersected and their possible links joined. A source no format writes for
    the target raises ``ValueError``.
    """
    day = date.fromisoformat(pair.target)
    found = [
        links
        for text, links in (f.render_with_links(day) for f in _FORMAT_LIST)
        if text == pair.source
    ]
    if not found:
        raise ValueError(f"no date format writes {pair.target} as {pair.source!r}")
    sure = frozenset.intersection(*(links.sure for links in found))
    possible = frozenset.union(*(links.possible for links in found))
    return DateLinks(sure, possible)


def _ordinal_range(start_year: int, end_year: int) -> range:
    """The proleptic ordinals (``date.toordinal``) of every day from ``start_year`` to
    ``end_year``, both included."""
    if not FIRST_YEAR <= start_year <= end_year <= LAST_YEAR:
        raise ValueError(
            f"need {FIRST_YEAR} <= start_year <= end_year <= {LAST_YEAR}, "
            f"got start_year={start_year}, end_year={end_year}"
        )
    return range(date(start_year, 1, 1).toordinal(), date(end_year, 12, 31).toordinal() + 1)


def _check_counts(**counts: int) -> None:
    for name, count in counts.items():
        if count < 0:
            raise ValueError(f"{name} must be at least 0, got {count}")


def generate_date_pairs(
    count: int, seed: int, start_year: int = 1950, end_year: int = 2049
) -> list[DatePair]:
    """``count`` pairs from a fixed seed; dates uniform over every calendar day of the years
    ``start_year`` to ``end_year`` (both included), formats uniform over ``FORMATS``."""
    _check_counts(count=count)
    days = _ordinal_range(start_year, end_year)
    rng = random.Random(seed)
    return [make_pair(date.fromordinal(rng.choice(days)), rng) for _ in range(count)]


def split_date_pairs(
    count_train: int,
    count_dev: int,
    count_test: int,
    seed: int,
    start_year: int = 1950,
    end_year: int = 2049,
) -> tuple[list[DatePair], list[DatePair], list[DatePair]]:
    """Train, dev and test pairs whose calendar dates never overlap, from a fixed seed.

    Dev and test dates are drawn without replacement (each is a different day, so
    ``count_dev + count_test`` may not exceed the number of days in the years); train dates
    are drawn uniformly, with replacement, from the remaining days. Held-out dates are
    split by the date itself, so no test date reaches training in any format.
    """
    _check_counts(count_train=count_train, count_dev=count_dev, count_test=count_test)
    days = _ordinal_range(start_year, end_year)
    held_out_count = count_dev + count_test
    if held_out_count > len(days) or (count_train > 0 and held_out_count == len(days)):
        raise ValueError(
            f"{start_year}-{end_year} has {len(days)} days: too few to hold out "
            f"{held_out_count} dev and test dates and leave any for training"
        )
    rng = random.Random(seed)
    held_out = rng.sample(days, held_out_count)
    dev = [make_pair(date.fromordinal(day), rng) for day in held_out[:count_dev]]
    test = [make_pair(date.fromordinal(day), rng) for day in held_out[count_dev:]]
    held_out_set = set(held_out)
    train_days = [day for day in days if day not in held_out_set]
    train = [make_pair(date.fromordinal(rng.choice(train_days)), rng) for _ in range(count_train)]
    return train, dev, test


def write_parallel(
    pairs: Iterable[DatePair],
    source_path: str | os.PathLike[str],
    target_path: str | os.PathLike[str],
) -> None:
    """Write sources and targets to two files, one sentence per line, line ``i`` matching."""
    with (
        open(source_path, "w", encoding="utf-8") as sources,
        open(target_path, "w", encoding="utf-8") as targets,
    ):
        for pair in pairs:
            sources.write(pair.source + "\n")
            targets.write(pair.target + "\n")
