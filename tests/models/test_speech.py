"""The speech recognizer: shapes, padding invariance, the joint loss on edge lengths,
step-by-step decoding, and a tiny generated-audio task that trains in seconds."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from attnrnn.config import InferenceConfig, TrainerConfig, from_dict
from attnrnn.data.audio import FeatureConfig, GlobalNormalizer, LogMelFrontEnd
from attnrnn.data.tokenizers import CharacterTokenizer
from attnrnn.data.tones import make_tone_utterances
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import SearchConfig, beam_search, greedy_search
from attnrnn.decoding.ctc import JointCTCAttention
from attnrnn.errors import ConfigError
from attnrnn.models.speech import (
    ListenerConfig,
    SpeechModelConfig,
    SpeechRecognizer,
    diagonal_attention_loss,
)
from attnrnn.nn import hand_written
from attnrnn.tasks.speech import (
    Recognizer,
    SpeechDataConfig,
    SpeechRunConfig,
    SpeechSplit,
    SpeechTask,
    collate,
    pad_features,
)
from attnrnn.tasks.text import SPECIALS, TextSide

PAD, BOS, EOS = 0, 2, 3
STEPS = 300  # tone-task training steps
F_BINS, V = 20, 9


@pytest.fixture(scope="module")
def model_config(tiny_speech_model) -> SpeechModelConfig:
    """The tiny speech model with a two-layer listener and dropout (0.1 in the listener,
    0.3 before the output layer)."""
    model = tiny_speech_model(
        listener={"num_layers": 2, "dropout": 0.1}, decoder={"output_dropout": 0.3}
    )
    return from_dict(SpeechModelConfig, model)


def make_model(
    config: SpeechModelConfig, listener: str = "conv", seed: int = 0
) -> SpeechRecognizer:
    """The model of ``config`` with a ``listener`` listener, in float64 and eval mode."""
    torch.manual_seed(seed)
    config = dataclasses.replace(
        config, listener=dataclasses.replace(config.listener, type=listener)
    )
    return SpeechRecognizer(F_BINS, V, config, PAD, BOS, EOS).double().eval()


@pytest.mark.parametrize("listener", ["conv", "pyramidal"])
def test_listener_is_padding_invariant(listener, model_config):
    model = make_model(model_config, listener)
    generator = torch.Generator().manual_seed(1)
    long, short = torch.randn(1, 37, F_BINS, generator=generator, dtype=torch.float64), None
    short = torch.randn(1, 21, F_BINS, generator=generator, dtype=torch.float64)
    batch = torch.zeros(2, 37, F_BINS, dtype=torch.float64)
    batch[0], batch[1, :21] = long[0], short[0]
    with torch.no_grad():
        together = model.encode(batch, torch.tensor([37, 21]))
        alone = model.encode(short, torch.tensor([21]))
    frames = int(alone.memory_mask.sum())
    assert int(together.memory_mask[1].sum()) == frames
    torch.testing.assert_close(together.memory[1, :frames], alone.memory[0, :frames])
    torch.testing.assert_close(together.final[0, 1], alone.final[0, 0])


def test_step_by_step_equals_teacher_forcing(model_config):
    model = make_model(model_config)
    features = torch.randn(2, 30, F_BINS, dtype=torch.float64)
    lengths = torch.tensor([30, 18])
    target_input = torch.tensor([[BOS, 4, 5, 6], [BOS, 7, 8, PAD]])
    with torch.no_grad():
        output = model(features, lengths, target_input)
        expected = F.log_softmax(model.output_logits(output.attentional), -1)
        state = model.init_state(model.encode(features, lengths))
        for position in range(target_input.size(1)):
            log_probs, state, weights = model.step(target_input[:, position], state)
            torch.testing.assert_close(log_probs, expected[:, position].float())
            torch.testing.assert_close(weights, output.attention[:, position])


def batch_loss(model, batch, label_smoothing):
    """The model's joint loss (and its token count) on a collated batch."""
    return model.joint_loss(
        batch.features, batch.lengths, batch.target_input, batch.target_output, label_smoothing
    )


def transcribe_features(model, features, search, ctc_weight, trainer, device):
    """N-best lists of normalized features through the task's batched decoding (a
    :class:`Recognizer` around ``model``, batched as ``trainer`` says)."""
    config = SpeechRunConfig(
        data=SpeechDataConfig(train="unused.tsv"),
        inference=InferenceConfig(trainer.batch_tokens, trainer.max_batch_size),
        ctc_weight=ctc_weight,
    )
    recognizer = Recognizer(SpeechTask(), config, None, model, device)
    return recognizer.hypotheses(features, search)


def split_of(features, targets):
    return SpeechSplit(features, targets, ["x"] * len(targets))


@pytest.mark.parametrize("frames", [1, 3, 4, 9])
def test_joint_loss_is_finite_on_edge_lengths(frames, model_config):
    """Very short audio (fewer listener frames than labels) must not give inf / NaN."""
    model = make_model(model_config).float().train()
    features = [torch.randn(frames, F_BINS), torch.randn(40, F_BINS)]
    targets = [[4, 5, 6, 7, 8], [4]]
    batch = collate(split_of(features, targets), [0, 1], model)
    loss, tokens = batch_loss(model, batch, label_smoothing=0.1)
    assert torch.isfinite(loss)
    assert tokens == 5 + 1 + 2  # labels + EOS per utterance
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_joint_loss_weights_its_parts(model_config):
    model = make_model(model_config).float()
    features = [torch.randn(30, F_BINS), torch.randn(25, F_BINS)]
    batch = collate(split_of(features, [[4, 5], [6]]), [0, 1], model)
    losses = {}
    for weight in (0.0, 1.0, 0.5):
        model.config = dataclasses.replace(model.config, ctc_weight=weight)
        losses[weight], _ = batch_loss(model, batch, label_smoothing=0.0)
    torch.testing.assert_close(losses[0.5], (losses[0.0] + losses[1.0]) / 2)


def one_hot_attention(rows: list[int], frames: int) -> torch.Tensor:
    """(1, U, frames) attention on frame ``rows[u]`` at step u."""
    return F.one_hot(torch.tensor([rows]), frames).double()


def test_diagonal_loss_charges_attention_off_the_diagonal():
    valid, frames = torch.ones(1, 4, dtype=torch.bool), torch.tensor([8])
    diagonal = one_hot_attention([0, 2, 5, 7], 8)  # the centres of 4 steps over 8 frames
    stuck = one_hot_attention([0, 0, 0, 0], 8)  # the collapse onto the leading frames
    backwards = one_hot_attention([7, 5, 2, 0], 8)
    losses = [diagonal_attention_loss(a, valid, frames, 0.3) for a in (diagonal, stuck, backwards)]
    assert float(losses[0]) < 0.05 < 0.3 < float(losses[1]) < float(losses[2]) < 1.0
    # a narrower band charges the same misalignment more
    assert float(diagonal_attention_loss(stuck, valid, frames, 0.1)) > float(losses[1])


def test_diagonal_loss_ignores_padding():
    attention = torch.softmax(torch.randn(1, 3, 6, dtype=torch.float64), dim=-1)
    alone = diagonal_attention_loss(
        attention, torch.ones(1, 3, dtype=torch.bool), torch.tensor([6]), 0.3
    )
    padded = torch.zeros(2, 5, 9, dtype=torch.float64)
    padded[1, :3, :6] = attention[0]
    padded[0, :2, :4] = torch.softmax(torch.randn(2, 4, dtype=torch.float64), dim=-1)
    valid = torch.zeros(2, 5, dtype=torch.bool)
    valid[1, :3] = valid[0, :2] = True
    other = diagonal_attention_loss(padded[:1, :2, :4], valid[:1, :2], torch.tensor([4]), 0.3)
    together = diagonal_attention_loss(padded, valid, torch.tensor([4, 6]), 0.3)
    torch.testing.assert_close(together, (2 * other + 3 * alone) / 5)


def test_joint_loss_adds_the_weighted_diagonal_loss(model_config):
    model = make_model(model_config).float()
    features = [torch.randn(30, F_BINS), torch.randn(25, F_BINS)]
    batch = collate(split_of(features, [[4, 5], [6]]), [0, 1], model)
    plain, _ = batch_loss(model, batch, label_smoothing=0.0)
    model.config = dataclasses.replace(model.config, diagonal_weight=2.0, diagonal_width=0.2)
    guided, _ = batch_loss(model, batch, label_smoothing=0.0)
    output = model(batch.features, batch.lengths, batch.target_input)
    valid = batch.target_output != PAD
    expected = diagonal_attention_loss(output.attention, valid, output.ctc_lengths, 0.2)
    torch.testing.assert_close(guided, plain + 2.0 * expected)
    with pytest.raises(ConfigError, match="diagonal_weight must be >= 0"):
        dataclasses.replace(model.config, diagonal_weight=-1.0)


def graph_nodes(tensor: torch.Tensor) -> set[str]:
    """The class names of every node in ``tensor``'s backward graph."""
    names, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            names.add(type(node).__name__)
            stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def formula_joint_loss(model, batch, label_smoothing):
    """The joint loss written out with PyTorch's losses (the formula the task code
    used before the model had :meth:`joint_loss`), in the model's dtype."""
    output = model(batch.features, batch.lengths, batch.target_input)
    valid = batch.target_output != PAD  # (B, U)
    logits = model.output_logits(output.attentional[valid])  # (N, V)
    attention_loss = F.cross_entropy(
        logits, batch.target_output[valid], label_smoothing=label_smoothing
    )
    labelled = valid & (batch.target_output != EOS)  # (B, U)
    labels = labelled.sum(dim=1)  # (B,)
    ctc = F.ctc_loss(
        output.ctc_log_probs.transpose(0, 1),  # (T', B, V)
        batch.target_output.masked_select(labelled),
        output.ctc_lengths,
        labels,
        blank=PAD,
        reduction="sum",
        zero_infinity=True,
    ) / max(int(labels.sum()), 1)
    weight = model.config.ctc_weight
    return weight * ctc + (1.0 - weight) * attention_loss


@pytest.mark.parametrize("hand", [True, False])
def test_joint_loss_equals_the_formula_in_value_and_gradient(hand, model_config):
    """Through ``output_loss`` (fused when ``hand``) the joint loss is the CTC and
    label-smoothed cross-entropy formula, gradients included, with dropout on and one
    utterance too short for its labels."""
    model = make_model(model_config).train()
    features = [torch.randn(n, F_BINS, dtype=torch.float64) for n in (30, 3, 25)]
    batch = collate(split_of(features, [[4, 5], [6, 7, 8, 4, 5], [6]]), [0, 1, 2], model)
    results = []
    for compute in (batch_loss, formula_joint_loss):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(3)  # the same dropout masks
        with hand_written(hand):
            loss = compute(model, batch, 0.1)
        if compute is batch_loss:
            loss, tokens = loss
            assert tokens == 2 + 5 + 1 + 3  # labels + EOS per utterance
            assert ("_LinearCrossEntropyBackward" in graph_nodes(loss)) is hand
        loss.backward()
        results.append([loss.detach()] + [p.grad for p in model.parameters()])
    assert results[0][0].dtype == torch.float64
    for got, want in zip(*results, strict=True):
        assert got is not None and want is not None
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def tone_split(count: int, seed: int, side: TextSide, front_end, normalizer=None):
    utterances = make_tone_utterances(count, seed)
    raw = [front_end(torch.from_numpy(u.samples)) for u in utterances]
    normalizer = normalizer or GlobalNormalizer.fit(raw)
    features = [normalizer(f) for f in raw]
    targets = [side.encode(u.text) for u in utterances]
    return SpeechSplit(features, targets, [u.text for u in utterances]), normalizer


def test_tone_sequences_train_end_to_end(model_config):
    """Generated tone "syllables" are recognised after a few seconds of training."""
    torch.manual_seed(0)
    front_end = LogMelFrontEnd(FeatureConfig(sample_rate=8000, num_mel_bins=F_BINS))
    tokenizer = CharacterTokenizer()
    texts = [u.text for u in make_tone_utterances(300, seed=1)]
    vocab = Vocab.build((tokenizer.tokenize(t) for t in texts), specials=SPECIALS)
    side = TextSide(tokenizer, vocab)
    train, normalizer = tone_split(300, 1, side, front_end)
    test, _ = tone_split(40, 2, side, front_end, normalizer)
    config = dataclasses.replace(
        model_config,
        listener=ListenerConfig(conv_channels=8, hidden_size=32, num_layers=1, dropout=0.0),
    )
    model = SpeechRecognizer(
        F_BINS, len(vocab), config, vocab.pad_index, vocab.index("<s>"), vocab.index("</s>")
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        model.train()
        indices = torch.randperm(len(train), generator=generator)[:16].tolist()
        loss, _ = batch_loss(model, collate(train, indices, model), label_smoothing=0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trainer = TrainerConfig(batch_tokens=5000)
    # At this point attention alone still drops or merges a syllable now and then
    # (about 0.88 here); joint CTC scoring fixes that, which is why it exists.
    for weight, floor in ((0.0, 0.75), (0.3, 0.95), (1.0, 0.95)):
        hypotheses = transcribe_features(
            model, test.features, SearchConfig(beam_size=3), weight, trainer, torch.device("cpu")
        )
        outputs = [side.decode(n_best[0].tokens) for n_best in hypotheses]
        correct = sum(o == r for o, r in zip(outputs, test.references, strict=True))
        assert correct / len(test) >= floor, (weight, outputs[:5], test.references[:5])


# ----------------------------------------------- the decoding invariants of translation


def random_utterances(lengths: list[int], seed: int = 3) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, F_BINS, generator=generator, dtype=torch.float64) for n in lengths]


def sharpened(model: SpeechRecognizer) -> SpeechRecognizer:
    """Scale the output layers so an untrained model makes confident, varied choices."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "output" in name or "ctc" in name:
                parameter.mul_(6.0)
    return model


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("listener", ["conv", "pyramidal"])
def test_speech_beam_one_equals_greedy(listener, ctc_weight, model_config):
    model = sharpened(make_model(model_config, listener, seed=2))
    features = random_utterances([40, 23, 31])
    config = SearchConfig(beam_size=1, max_length_ratio=1.0, max_length_offset=4)
    padded, lengths = pad_features(features)
    with torch.no_grad():
        encoded = model.encode(padded, lengths)
        memory_lengths = encoded.memory_mask.sum(dim=1)
        step_model: object = model
        if ctc_weight:
            log_probs, ctc_lengths = model.ctc_log_probs(encoded)
            step_model = JointCTCAttention(model, log_probs, ctc_lengths, ctc_weight, PAD)
        state = step_model.init_state(encoded)
        greedy = greedy_search(step_model, state, memory_lengths, config)
        beam = beam_search(step_model, state, memory_lengths, config)
    assert [n[0].tokens for n in greedy] == [n[0].tokens for n in beam]
    assert any(len(n[0].tokens) > 1 for n in greedy)  # the outputs are not all trivial
    for g, b in zip(greedy, beam, strict=True):
        assert g[0].log_prob == pytest.approx(b[0].log_prob, abs=1e-9)


@pytest.mark.parametrize("ctc_weight", [0.0, 0.5])
@pytest.mark.parametrize("beam_size", [1, 4])
def test_speech_batch_gives_the_same_transcripts_as_one_by_one(beam_size, ctc_weight, model_config):
    model = sharpened(make_model(model_config, "conv", seed=4))
    features = random_utterances([44, 17, 29, 36, 23], seed=5)
    config = SearchConfig(beam_size=beam_size, n_best=beam_size, max_length_offset=4)
    trainer = TrainerConfig(batch_tokens=10**6, max_batch_size=64)
    cpu = torch.device("cpu")
    batched = transcribe_features(model, features, config, ctc_weight, trainer, cpu)
    assert len({tuple(n[0].tokens) for n in batched}) > 1  # varied, non-trivial outputs
    for feature, n_best in zip(features, batched, strict=True):
        (alone,) = transcribe_features(model, [feature], config, ctc_weight, trainer, cpu)
        assert [h.tokens for h in n_best] == [h.tokens for h in alone]
        for together, single in zip(n_best, alone, strict=True):
            assert together.score == pytest.approx(single.score, abs=1e-7)
            torch.testing.assert_close(together.attention, single.attention)


def test_batches_padded_to_a_multiple_give_the_same_joint_loss(model_config):
    model = make_model(model_config)
    generator = torch.Generator().manual_seed(2)
    features = [torch.randn(n, F_BINS, generator=generator, dtype=torch.float64) for n in (23, 30)]
    split = split_of(features, [[4, 5, 6], [7, 8]])
    exact = collate(split, [0, 1], model)
    padded = collate(split, [0, 1], model, multiple=16)
    assert padded.features.shape == (2, 32, F_BINS) and exact.features.shape[1] == 30
    assert padded.target_input.shape == (2, 16) and exact.target_input.shape == (2, 4)
    with torch.no_grad():
        ours, units = batch_loss(model, padded, label_smoothing=0.1)
        expected, expected_units = batch_loss(model, exact, label_smoothing=0.1)
    assert units == expected_units
    torch.testing.assert_close(ours, expected)
