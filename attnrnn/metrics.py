"""Corpus-level text metrics, computed by the well-kept libraries that define them.

BLEU and chrF come from sacreBLEU, so scores are comparable with published
ones; each result carries sacreBLEU's signature (tokenizer, casing, version).
ROUGE comes from rouge-score (Google's reimplementation of the ROUGE script), word
and character error rates from jiwer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from attnrnn.extras import require


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
    BLEU = require("sacrebleu.metrics").BLEU
    _check_lengths(hypotheses, references)
    metric = BLEU(tokenize=tokenize)
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return CorpusScore("BLEU", float(result.score), str(metric.get_signature()))


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> CorpusScore:
    """sacreBLEU chrF (character n-gram F-score, beta 2)."""
    CHRF = require("sacrebleu.metrics").CHRF
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


def rouge_scores(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """ROUGE-1/2/L F1 (rouge-score, Porter stemming): mean over each document's
    references (``rouge1``...) and the best reference (``rouge1_max``...), averaged over
    documents."""
    rouge_scorer = require("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {name: 0.0 for name in ("rouge1", "rouge2", "rougeL")}
    bests = dict.fromkeys(totals, 0.0)
    for output, document_references in zip(outputs, references, strict=True):
        per_reference = [scorer.score(reference, output) for reference in document_references]
        for name in totals:
            values = [scores[name].fmeasure for scores in per_reference]
            totals[name] += sum(values) / len(values)
            bests[name] += max(values)
    count = max(len(outputs), 1)
    metrics = {name: value / count for name, value in totals.items()}
    metrics.update({f"{name}_max": value / count for name, value in bests.items()})
    return metrics


def _check_lengths(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")


def error_rates(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Word and character error rates (jiwer) of transcripts against references."""
    jiwer = require("jiwer")
    if not references:
        return {"wer": 0.0, "cer": 0.0}
    hypotheses = [h if h.strip() else "" for h in hypotheses]
    return {
        "wer": float(jiwer.wer(list(references), list(hypotheses))),
        "cer": float(jiwer.cer(list(references), list(hypotheses))),
    }
