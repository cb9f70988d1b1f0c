"""How the source writes its words, and output tokens as readable text.

A lowercasing tokenizer makes fewer word types to learn, but a summary should
still say "McAllister" and "#Person1#" as the dialogue does. :func:`written_tokens`
recovers the source tokens as written, :func:`source_casing` the written form of
every word the source capitalizes, and :func:`readable_summary` turns output
tokens back into text with that casing, capitalized sentences, rejoined speaker
tags and Moses detokenization.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from attnrnn.data.tokenizers import Tokenizer, WordTokenizer
from attnrnn.extras import require

SENTENCE_ENDS = frozenset({".", "!", "?"})
TURN_STARTS = SENTENCE_ENDS | {":", '"'}  # a word after these starts a sentence or turn


def written_tokens(tokenizer: Tokenizer, text: str, tokens: Sequence[str]) -> list[str] | None:
    """The tokens of ``text`` with their case kept, when ``tokenizer`` lowercases and
    splitting without lowercasing gives the same tokens; otherwise None."""
    if not isinstance(tokenizer, WordTokenizer) or not tokenizer.lowercase:
        return None
    cased = WordTokenizer(
        lowercase=False,
        split_contractions=tokenizer.split_contractions,
        strip_html=tokenizer.strip_html,
    ).tokenize(text)[: len(tokens)]
    if len(cased) != len(tokens) or any(c.lower() != t for c, t in zip(cased, tokens, strict=True)):
        return None
    return cased


def source_casing(written: Sequence[str]) -> dict[str, str]:
    """The most frequent written form of every lowercased source token written with
    capitals ("mcallister" -> "McAllister"), not counting sentence-initial words
    (a capital there says nothing about the word)."""
    counts: dict[str, dict[str, int]] = {}
    for index, token in enumerate(written):
        if index == 0 or written[index - 1] in TURN_STARTS:
            continue
        forms = counts.setdefault(token.lower(), {})
        forms[token] = forms.get(token, 0) + 1
    casing = {}
    for lowered, forms in counts.items():
        best = max(forms.items(), key=lambda item: (item[1], item[0] != lowered))[0]
        if best != lowered:
            casing[lowered] = best
    return casing


def readable_summary(tokens: Sequence[str], casing: dict[str, str]) -> str:
    """Output tokens as text: the source's casing restored, sentences capitalized,
    speaker tags rejoined ("# person1 #" -> "#Person1#", as DialogSum writes them), and
    Moses detokenization (sacremoses) of punctuation ("it 's fine ." -> "it's fine.").
    ROUGE (which lowercases and drops punctuation) scores it as the bare tokens."""
    cased = [casing.get(token, token) for token in tokens]
    for index, token in enumerate(cased):
        if index == 0 or cased[index - 1] in SENTENCE_ENDS:
            cased[index] = token[:1].upper() + token[1:]
    joined: list[str] = []
    index = 0
    while index < len(cased):
        window = cased[index : index + 3]
        if len(window) == 3 and window[0] == window[2] == "#" and window[1].isalnum():
            joined.append(f"#{window[1]}#")
            index += 3
        else:
            joined.append(cased[index])
            index += 1
    return _moses_detokenizer().detokenize(joined)


@functools.cache
def _moses_detokenizer() -> Any:
    return require("sacremoses").MosesDetokenizer(lang="en")
