"""Corpus-level text metrics, computed by the well-kept libraries that define them.

BLEU and chrF come from sacreBLEU, so scores are comparable with published
ones; each result carries sacreBLEU's signature (tokenizer, casing, version).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CorpusScore:
    """A corpus score with the signature that says how it was computed."""

    name: str
    score: float
    signature: str

    def __str__(self) -> str:
        return f"{self.name} {self.score:.2f} ({self.signature})"


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a"
) -> CorpusScore:
    """sacreBLEU BLEU (cased, ``tokenize`` 13a by default) of detokenized outputs
    against one reference each."""
    from sacrebleu.metrics import BLEU

    _check_lengths(hypotheses, references)
    metric = BLEU(tokenize=tokenize)
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return CorpusScore("BLEU", float(result.score), str(metric.get_signature()))


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> CorpusScore:
    """sacreBLEU chrF (character n-gram F-score, beta 2)."""
    from sacrebleu.metrics import CHRF

    _check_lengths(hypotheses, references)
    metric = CHRF()
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return CorpusScore("chrF", float(result.score), str(metric.get_signature()))


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """The fraction of outputs equal to their reference."""
    _check_lengths(hypotheses, references)
    if not references:
        return 0.0
    return sum(h == r for h, r in zip(hypotheses, references, strict=True)) / len(references)


def _check_lengths(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
