"""Synthetic reviews where a few words decide the label (for the demo and tests).

Each review is filler words around one or two opinion phrases. An opinion
phrase is an optional negation, an optional intensifier and a polar word:
"not very good" is negative. With two clauses joined by "but", the second
clause decides ("the plot was dull but the acting was superb" is positive).
A model that solves this must find the deciding words among the filler,
which is exactly what attention is good at showing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

POSITIVE = ("good", "great", "superb", "wonderful", "brilliant", "delightful", "moving", "fun")
NEGATIVE = ("bad", "awful", "boring", "terrible", "dull", "poor", "clumsy", "tedious")
NEGATIONS = ("not", "never", "hardly")
NEGATION_RATE = 0.5  # often enough that a model cannot do well by ignoring negation
INTENSIFIERS = ("very", "really", "quite", "truly", "rather")
SUBJECTS = (
    "the movie",
    "the film",
    "the plot",
    "the acting",
    "the story",
    "the music",
    "the ending",
    "the script",
    "the cast",
    "the director",
)
VERBS = ("was", "is", "seemed", "felt")
FILLER = (
    "i",
    "saw",
    "it",
    "last",
    "week",
    "with",
    "my",
    "friends",
    "in",
    "a",
    "small",
    "cinema",
    "and",
    "then",
    "we",
    "talked",
    "about",
    "for",
    "an",
    "hour",
    "after",
    "its",
    "long",
    "second",
    "half",
    "on",
    "sunday",
    "at",
    "home",
    "again",
)


@dataclass(frozen=True)
class SyntheticReview:
    text: str
    label: str  # "positive" or "negative"


def _opinion(rng: random.Random) -> tuple[list[str], bool]:
    positive = rng.random() < 0.5
    words = [rng.choice(POSITIVE if positive else NEGATIVE)]
    if rng.random() < 0.3:
        words.insert(0, rng.choice(INTENSIFIERS))
    if rng.random() < NEGATION_RATE:
        words.insert(0, rng.choice(NEGATIONS))
        positive = not positive
    return words, positive


def _clause(rng: random.Random) -> tuple[list[str], bool]:
    opinion, positive = _opinion(rng)
    return [*rng.choice(SUBJECTS).split(), rng.choice(VERBS), *opinion], positive


def _filler(rng: random.Random, low: int, high: int) -> list[str]:
    return [rng.choice(FILLER) for _ in range(rng.randint(low, high))]


def make_review(rng: random.Random) -> SyntheticReview:
    """One review; its label is decided by its (last) opinion clause."""
    words = _filler(rng, 0, 8)
    clause, positive = _clause(rng)
    if rng.random() < 0.35:
        second, positive = _clause(rng)
        clause = [*clause, "but", *second]
    words += clause + _filler(rng, 0, 8)
    return SyntheticReview(" ".join(words), "positive" if positive else "negative")


def make_reviews(count: int, seed: int) -> list[SyntheticReview]:
    """``count`` reviews from a fixed seed."""
    rng = random.Random(seed)
    return [make_review(rng) for _ in range(count)]


def write_tsv(reviews: list[SyntheticReview], path) -> None:
    """Write reviews as a TSV file with a ``text``/``label`` header."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("text\tlabel\n")
        for review in reviews:
            handle.write(f"{review.text}\t{review.label}\n")
