"""Guided alignment training: alignment files read with the training pairs, word and
character units traced to tokens, the loss term, and its user errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from attnrnn.cli import main
from attnrnn.data.alignments import write_links
from attnrnn.data.dates import date_links, split_date_pairs, write_parallel
from attnrnn.data.parallel import ParallelExample
from attnrnn.data.tokenizers import CharacterTokenizer, WordTokenizer
from attnrnn.tasks.translation import (
    ParallelSplit,
    collate,
    guided_alignment_loss,
    token_units,
)


def test_word_units_spread_over_a_words_tokens():
    tokenizer = WordTokenizer(lowercase=False)
    assert token_units(tokenizer, "A dog's ball.", "words") == [0, 1, 1, 2, 2]
    characters = CharacterTokenizer(lowercase=False)
    # a character tokenizer's tokens include spaces: they cannot be traced to words
    assert token_units(characters, "9 Apr", "words") is None
    assert token_units(characters, "9 Apr", "characters") == [0, 1, 2, 3, 4]
    assert token_units(characters, "9  Apr", "characters") is None  # spaces normalised


def test_guided_alignment_loss_is_the_cross_entropy_on_linked_rows():
    reference = torch.zeros(1, 3, 4)
    reference[0, 0, 1] = 1.0
    reference[0, 1, 2:] = 0.5  # two links: half each
    one_hot = torch.zeros(1, 3, 4)
    one_hot[0, 0, 1] = one_hot[0, 1, 2] = one_hot[0, 2, 0] = 1.0
    uniform = torch.full((1, 3, 4), 0.25)
    assert float(guided_alignment_loss(uniform, reference)) == pytest.approx(math.log(4))
    # row 0 matches exactly (0); row 1 puts all on one of its two links (0.5 * -log 1e-9)
    expected = (0.0 + 0.5 * -math.log(1e-9)) / 2
    assert float(guided_alignment_loss(one_hot, reference)) == pytest.approx(expected, rel=1e-4)
    assert float(guided_alignment_loss(uniform, torch.zeros(1, 3, 4))) == 0.0


def test_collate_normalises_each_target_positions_links():
    split = ParallelSplit(
        sources=[[5, 6, 7]],
        targets=[[8, 9]],
        references=["x"],
        links=[frozenset({(0, 0), (1, 1), (1, 2)})],
    )
    batch = collate(split, [0], 0, 1, 2, with_alignment=True)
    assert batch.alignment is not None
    expected = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]]])
    torch.testing.assert_close(batch.alignment, expected)
    assert collate(split, [0], 0, 1, 2).alignment is None


@pytest.fixture(scope="module")
def date_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guided")
    splits = split_date_pairs(300, 30, 30, seed=5)
    for name, pairs in zip(("train", "dev", "test"), splits, strict=True):
        write_parallel(pairs, folder / f"{name}.human", folder / f"{name}.iso")
        write_links(folder / f"{name}.align", [date_links(pair).pharaoh() for pair in pairs])
    return folder


def date_config(folder, **extra) -> dict:
    config = {
        "task": "translation",
        "data": {
            "train": str(folder / "train"),
            "dev": str(folder / "dev"),
            "source_language": "human",
            "target_language": "iso",
            "alignments": str(folder / "train.align"),
            "alignment_units": "characters",
        },
        "tokenizer": {"type": "character", "joint": False},
        "model": {
            "embedding_size": 16,
            "encoder": {"cell": "gru", "hidden_size": 16, "num_layers": 1},
            "decoder": {"hidden_size": 32, "attention_size": 16, "input_feeding": False},
        },
        "guided_alignment": 1.0,
        "metric": "exact_match",
        "optimizer": {"learning_rate": 0.01, "warmup_steps": 5},
        "trainer": {"epochs": 1, "max_steps": 6, "num_threads": 1, "progress": False},
        "search": {"beam_size": 1},
    }
    for key, value in extra.items():
        section, _, name = key.partition(".")
        if name:
            config[section][name] = value
        else:
            config[section] = value
    return config


def run_cli(capsys, *arguments):
    status = main(list(arguments))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_guided_training_reads_the_links_and_learns_to_follow_them(date_files, tmp_path, capsys):
    from attnrnn.tasks import TASKS

    config = date_config(date_files)
    task = TASKS["translation"]
    parsed = task.config_class  # the pairs read for training carry their alignment
    from attnrnn.tasks.runs import read_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    run_config = read_config(path)
    assert isinstance(run_config, parsed)
    pairs = task.read_split(run_config, run_config.data.train, "train")
    assert all(isinstance(pair, ParallelExample) and pair.alignment for pair in pairs)
    assert task.read_split(run_config, run_config.data.dev, "dev")[0].alignment is None
    status, _, err = run_cli(capsys, "train", str(path), "-o", str(tmp_path / "run"))
    assert status == 0, err
    assert "0 pairs without usable alignment links" in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data.alignments": None}, "guided_alignment needs data.alignments"),
        ({"tokenizer": {"type": "word"}}, "alignment_units: characters needs tokenizer.type"),
        ({"data.alignments": "DEV"}, "alignment lines for 300 training pairs"),
    ],
)
def test_guided_alignment_user_errors(date_files, tmp_path, capsys, change, message):
    if change.get("data.alignments") == "DEV":
        change = {"data.alignments": str(date_files / "dev.align")}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(date_config(date_files, **change)))
    status, _out, err = run_cli(capsys, "train", str(path), "-o", str(tmp_path / "run"))
    assert status == 2 and "Traceback" not in err
    assert message in err


def test_data_align_writes_pharaoh_links(tmp_path, capsys):
    pytest.importorskip("eflomal")
    words = {"hund": "dog", "katze": "cat", "rot": "red", "klein": "small", "sieht": "sees"}
    german = list(words)
    sources, targets = [], []
    for n in range(120):
        first, second = german[n % 5], german[(n * 2 + 1) % 5]
        sources.append(f"{first} {second}")
        targets.append(f"{words[first]} {words[second]}")
    (tmp_path / "s.txt").write_text("\n".join(sources) + "\n")
    (tmp_path / "t.txt").write_text("\n".join(targets) + "\n")
    output = tmp_path / "links.align"
    status, out, err = run_cli(
        capsys, "data", "align", str(tmp_path / "s.txt"), str(tmp_path / "t.txt"), "-o", str(output)
    )
    assert status == 0, err
    assert "aligned 120 sentence pairs" in out and str(output) in out
    lines = output.read_text().splitlines()
    assert len(lines) == 120
    agreeing = sum(set(line.split()) == {"0-0", "1-1"} for line in lines)
    assert agreeing > 100


def test_diagnose_a_date_run_against_the_generators_links(date_files, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(date_config(date_files, **{"data.test": str(date_files / "test")}))
    )
    run = tmp_path / "run"
    assert run_cli(capsys, "train", str(path), "-o", str(run))[0] == 0
    status, _, err = run_cli(
        capsys, "diagnose", str(run), "--limit", "8", "--alignments", str(date_files / "test.align")
    )
    assert status == 0, err
    document = json.loads((run / "diagnostics" / "diagnostics.json").read_text())
    sections = {section["name"]: section for section in document["sections"]}
    assert {"alignment", "counterfactual_steps", "erasure", "entropy"} <= set(sections)
    assert 0 <= sections["alignment"]["summary"]["aer_argmax"] <= 1
    status, _, err = run_cli(
        capsys, "diagnose", str(run), "--alignments", str(date_files / "missing.align")
    )
    assert status == 2 and "missing.align" in err
