"""Pointer-generator with coverage: the extended-vocabulary distribution, copying of
unknown words, the coverage loss, step == teacher forcing, and a toy copy task."""

from __future__ import annotations

import random

import pytest
import torch

from attnrnn.config import EncoderConfig
from attnrnn.data.casing import readable_summary, source_casing, written_tokens
from attnrnn.data.document_batches import collate
from attnrnn.data.documents import Document, decode_ids, encode_document
from attnrnn.data.tokenizers import WordTokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import SearchConfig
from attnrnn.metrics import rouge_scores
from attnrnn.models.pointer_generator import PointerGenerator, coverage_loss
from attnrnn.models.seq2seq import DecoderConfig, Seq2SeqConfig
from attnrnn.tasks.summarization import (
    SummarizationAssets,
    SummarizationDataConfig,
    SummarizationRunConfig,
    SummarizationTask,
    Summarizer,
    encode_split,
    summarization_loss,
)
from attnrnn.tasks.text import SPECIALS, TextSide

PAD, UNK, BOS, EOS = 0, 1, 2, 3
V = 12


def tiny(copy: bool = True, attention: str = "coverage", seed: int = 0) -> PointerGenerator:
    config = Seq2SeqConfig(
        embedding_size=8,
        embedding_dropout=0.0,
        share_embeddings=True,
        encoder=EncoderConfig(cell="lstm", hidden_size=8),
        decoder=DecoderConfig(
            cell="lstm", hidden_size=16, attention=attention, attention_size=8, output_dropout=0.0
        ),
    )
    torch.manual_seed(seed)
    return PointerGenerator(V, config, PAD, BOS, EOS, UNK, copy=copy).double().eval()


SOURCE = torch.tensor([[5, 12, 6, 13, 12], [7, 12, 4, 0, 0]])  # 12, 13: unknown words
LENGTHS = torch.tensor([5, 3])
TARGET_IN = torch.tensor([[BOS, 12, 5, 13], [BOS, 7, 12, PAD]])
TARGET_OUT = torch.tensor([[12, 5, 13, EOS], [7, 12, EOS, PAD]])


@pytest.mark.parametrize("copy", [True, False])
def test_step_distribution_sums_to_one_over_the_extended_vocabulary(copy):
    model = tiny(copy)
    extended = V + 2 if copy else V
    source = SOURCE if copy else SOURCE.masked_fill(SOURCE >= V, UNK)
    state = model.init_state(model.encode_with_copy(source, LENGTHS, extended))
    tokens = TARGET_IN if copy else TARGET_IN.masked_fill(TARGET_IN >= V, UNK)
    for position in range(tokens.size(1)):
        log_probs, state, _ = model.step(tokens[:, position], state)
        assert log_probs.shape == (2, extended)
        torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, dtype=torch.float32))
        if copy:  # unknown words get probability only by copying
            assert (log_probs[1, V + 1 :].exp() < 1e-9).all()  # source 2 has one unknown word


def test_step_by_step_equals_teacher_forcing():
    model = tiny()
    with torch.no_grad():
        output = model.copy_forward(SOURCE, LENGTHS, TARGET_IN, TARGET_OUT, V + 2)
        state = model.init_state(model.encode_with_copy(SOURCE, LENGTHS, V + 2))
        for position in range(TARGET_IN.size(1)):
            log_probs, state, weights = model.step(TARGET_IN[:, position], state)
            picked = log_probs.gather(1, TARGET_OUT[:, position : position + 1]).squeeze(1)
            valid = TARGET_OUT[:, position] != PAD
            torch.testing.assert_close(
                picked[valid], output.target_log_probs[:, position][valid].float()
            )
            torch.testing.assert_close(weights, output.attention[:, position])


def test_coverage_loss_is_zero_without_revisits_and_counts_overlap():
    one_hot = torch.eye(4).unsqueeze(0)  # step t attends position t only
    assert coverage_loss(one_hot).abs().sum() == 0
    again = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]]])
    # step 1 revisits position 0 fully (min(1, 1) = 1); step 2: min(0.5, 2) + min(0.5, 0) = 0.5
    torch.testing.assert_close(coverage_loss(again), torch.tensor([[0.0, 1.0, 0.5]]))


def test_unknown_target_words_take_the_source_id():
    vocab = Vocab(["<pad>", "<unk>", "<s>", "</s>", "the", "cat"], specials=SPECIALS)
    encoded = encode_document(
        ["the", "zorp", "cat", "zorp", "blip"], ["zorp", "cat", "fizz"], vocab
    )
    assert encoded.source == [4, 6, 5, 6, 7]
    assert encoded.unknown == ["zorp", "blip"]
    assert encoded.target == [6, 5, vocab.unk_index]  # "fizz" is not in the source
    assert decode_ids([6, 4, 7], encoded, vocab) == ["zorp", "the", "blip"]
    written = encode_document(
        ["the", "zorp", "cat"], ["zorp"], vocab, source_surface=["The", "Zorp", "cat"]
    )
    assert written.unknown == ["zorp"] and written.casing == {"zorp": "Zorp"}
    assert decode_ids([6, 4], written, vocab) == ["Zorp", "the"]  # only copies keep case


def test_rouge_mean_and_best_reference():
    scores = rouge_scores(["the cat sat"], [("the cat sat", "a dog ran")])
    assert scores["rouge1_max"] == pytest.approx(1.0)
    assert scores["rouge1"] == pytest.approx(0.5)  # mean of 1.0 and 0.0


COMMON = ["a", "b", "c", "d", "e", "f", "g", "h"]


def copy_documents(count: int, seed: int) -> list[Document]:
    """Sources of common letters and one made-up name; the target is the name and the
    first letter ("Zqx7 a"), so producing it needs copying the unknown name. The
    tokenizer lowercases; the copy must keep the name as written."""
    generator = random.Random(seed)
    documents = []
    for _ in range(count):
        letters = "".join(generator.choice("qwxzjk") for _ in range(3))
        name = letters.capitalize() + str(generator.randint(0, 9))  # "Zqx7"
        words = [generator.choice(COMMON) for _ in range(generator.randint(3, 6))]
        words.insert(generator.randint(0, len(words)), name)
        target = f"{name} {words[0] if words[0] != name else words[1]}"
        documents.append(Document(" ".join(words), (target,), "generated"))
    return documents


def test_toy_copy_task_learns_to_copy_unknown_words():
    tokenizer = WordTokenizer(lowercase=True, split_contractions=False)
    train_documents = copy_documents(400, seed=1)
    texts = [d.source for d in train_documents]
    vocab = Vocab.build((tokenizer.tokenize(t) for t in texts), min_freq=5, specials=SPECIALS)
    assert len(vocab) <= 4 + len(COMMON) + 10  # names are rare: out of the vocabulary
    assets = SummarizationAssets(TextSide(tokenizer, vocab))
    run = SummarizationRunConfig(SummarizationDataConfig(train="-"))
    train = encode_split(train_documents, assets, run.data)
    test_documents = copy_documents(30, seed=2)
    test = encode_split(test_documents, assets, run.data)
    config = Seq2SeqConfig(
        embedding_size=16,
        embedding_dropout=0.0,
        share_embeddings=True,
        encoder=EncoderConfig(cell="lstm", hidden_size=32),
        decoder=DecoderConfig(
            cell="lstm", hidden_size=32, attention="coverage", output_dropout=0.0
        ),
    )
    torch.manual_seed(0)
    model = PointerGenerator(len(vocab), config, 0, 2, 3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = random.Random(0)
    for _ in range(250):
        model.train()
        batch = collate(train, generator.sample(range(len(train)), 32), model)
        loss, _ = summarization_loss(model, batch, coverage_weight=0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    summarizer = Summarizer(SummarizationTask(), run, assets, model, torch.device("cpu"))
    decoded = summarizer.hypotheses(test, SearchConfig(beam_size=2))
    outputs = [
        " ".join(decode_ids(n_best[0].tokens, document, vocab))
        for n_best, document in zip(decoded, test.documents, strict=True)
    ]
    references = [d.references[0] for d in test_documents]
    pairs = list(zip(outputs, references, strict=True))
    exact = sum(o == r for o, r in pairs) / len(pairs)
    names = sum(o.split()[:1] == r.split()[:1] for o, r in pairs) / len(pairs)  # case too
    assert names >= 0.9, pairs[:5]
    assert exact >= 0.8, pairs[:5]
    # the copied name is not in the vocabulary: it came from the source, as written there
    assert all(r.split()[0].lower() not in vocab for r in references)


def test_readable_summary_restores_casing_tags_and_punctuation():
    tokenizer = WordTokenizer(lowercase=True, split_contractions=False)
    text = "#Person1#: Did McAllister call? #Person2#: Yes, McAllister did."
    written = written_tokens(tokenizer, text, tokenizer.tokenize(text))
    assert written is not None and written[:5] == ["#", "Person1", "#", ":", "Did"]
    casing = source_casing(written)
    # "Did" and "Yes" open a turn: their capitals say nothing about the words
    assert casing == {"person1": "Person1", "mcallister": "McAllister", "person2": "Person2"}
    tokens = "# person1 # asks whether mcallister called . # person2 # says he did ."
    text = readable_summary(tokens.split(), casing)
    assert text == "#Person1# asks whether McAllister called. #Person2# says he did."
    assert readable_summary(["yes", ",", "it", "'s", "fine", "."], {}) == "Yes, it's fine."
    scores = rouge_scores([text], [(tokens,)])
    assert scores["rouge1"] == pytest.approx(1.0)  # ROUGE sees the same words


def test_batches_padded_to_a_multiple_give_the_same_loss():
    tokenizer = WordTokenizer(lowercase=True, split_contractions=False)
    documents = copy_documents(6, seed=3)
    vocab = Vocab.build((tokenizer.tokenize(d.source) for d in documents), specials=SPECIALS)
    assets = SummarizationAssets(TextSide(tokenizer, vocab))
    split = encode_split(documents, assets, SummarizationDataConfig(train="-"))
    config = Seq2SeqConfig(
        embedding_size=8,
        encoder=EncoderConfig(cell="lstm", hidden_size=8),
        decoder=DecoderConfig(cell="lstm", hidden_size=16, attention="coverage"),
    )
    torch.manual_seed(0)
    model = PointerGenerator(len(vocab), config, 0, 2, 3, 1).double().eval()
    exact = collate(split, range(6), model)
    padded = collate(split, range(6), model, multiple=16)
    assert padded.source.shape[1] == padded.target_input.shape[1] == 16
    assert exact.source.shape[1] < 16 and exact.target_input.shape[1] < 16
    ours, units = summarization_loss(model, padded, coverage_weight=0.5)
    expected, expected_units = summarization_loss(model, exact, coverage_weight=0.5)
    assert units == expected_units
    torch.testing.assert_close(ours, expected)
