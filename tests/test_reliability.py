"""No run lost: resume before the first checkpoint, a checkpoint on SIGINT / SIGTERM,
a resume that may not break its run, one writer per run, non-finite steps skipped,
metrics.csv in step with the checkpoint (issue 14)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from attnrnn.cli import main
from attnrnn.config import OptimizerConfig, TrainerConfig
from attnrnn.errors import RunError
from attnrnn.training.lock import run_lock
from attnrnn.training.trainer import MAX_NON_FINITE_STEPS, LossOutput, Trainer


def run_cli(capsys, *arguments):
    status = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def config_file(tmp_path, review_files, tiny_config):
    config = tiny_config(review_files, max_steps=6, eval_every_steps=2)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def metric_steps(run: Path) -> list[int]:
    with (run / "metrics.csv").open() as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def weights(run: Path, checkpoint: str = "last") -> bytes:
    return (run / checkpoint / "model.safetensors").read_bytes()


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_beginning(
    tmp_path, capsys, config_file
):
    straight = tmp_path / "straight"
    assert run_cli(capsys, "train", config_file, "-o", straight)[0] == 0
    run = tmp_path / "run"
    assert run_cli(capsys, "train", config_file, "-o", run)[0] == 0
    for name in ("last", "best", "metrics.csv", "results.json"):  # as if killed before them
        path = run / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    status, _, err = run_cli(capsys, "train", "--resume", run)
    assert status == 0, err
    assert "no checkpoint yet" in err
    assert weights(run) == weights(straight)
    assert metric_steps(run) == metric_steps(straight) == [2, 4, 6]


def test_metrics_rows_after_the_checkpoint_are_not_written_twice(tmp_path, capsys, config_file):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", config_file, "-o", run, "--set", "trainer.max_steps=4")[0] == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    # killed after writing the row of step 6 but before saving its checkpoint
    (run / "metrics.csv").write_text("\n".join([*rows, "6" + rows[-1][1:]]) + "\n")
    status, _, err = run_cli(capsys, "train", "--resume", run, "--set", "trainer.max_steps=6")
    assert status == 0, err
    assert metric_steps(run) == [2, 4, 6]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_checkpoint(tmp_path, review_files, tiny_config, stop):
    config = tiny_config(review_files, epochs=200, progress=True, log_every_steps=5)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "attnrnn.cli", "train", str(path), "-o", str(run)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert process.stderr is not None
    for line in process.stderr:  # training has started: its first progress line
        if line.startswith("step "):
            break
    process.send_signal(stop)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, rest
    assert f"interrupted: {stop.name} at step" in rest and "--resume" in rest
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    assert state["step"] >= 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_resume_that_would_break_the_run_changes_nothing(tmp_path, capsys, config_file):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", config_file, "-o", run)[0] == 0
    before = (run / "config.yaml").read_bytes()
    status, _, err = run_cli(
        capsys, "train", "--resume", run, "--set", "model.encoder.hidden_size=8"
    )
    assert status == 2 and "--resume cannot change model.encoder.hidden_size" in err
    assert (run / "config.yaml").read_bytes() == before
    texts = tmp_path / "t.txt"
    texts.write_text("a fine film\n")
    assert run_cli(capsys, "predict", run, texts)[0] == 0
    status, _, err = run_cli(capsys, "train", "--resume", run, "--set", "trainer.max_steps=8")
    assert status == 0, err
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == 8


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys, config_file):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", config_file, "-o", run, "--set", "trainer.max_steps=2")[0] == 0
    with run_lock(run):
        status, _, err = run_cli(capsys, "train", "--resume", run)
        assert status == 2
        assert f"being trained by another process (PID {os.getpid()})" in err
        with pytest.raises(RunError), run_lock(run):  # per open file, even in one process
            pass
    assert run_cli(capsys, "train", "--resume", run)[0] == 0  # released with its holder


class NaNTask:
    """Three batches an epoch; the loss is NaN on the steps listed in ``bad``."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad
        self.calls = 0

    def train_batches(self, epoch: int, group: int = 1) -> list[int]:
        return [0, 1, 2]

    def compute_loss(self, model: torch.nn.Module, batch: int) -> LossOutput:
        self.calls += 1
        loss = (model(torch.ones(1, 2)) ** 2).sum()
        if self.calls in self.bad:
            loss = loss * float("nan")
        return LossOutput(loss, 1)

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return {"loss": float(model.weight.detach().abs().sum())}


def make_trainer(tmp_path: Path, task: NaNTask, epochs: int) -> Trainer:
    model = torch.nn.Linear(2, 1)
    return Trainer(
        model,
        task,
        OptimizerConfig(warmup_steps=0),
        TrainerConfig(epochs=epochs, progress=False, early_stopping_patience=None),
        tmp_path,
        "loss",
        higher_is_better=False,
    )


def test_non_finite_steps_are_skipped_and_too_many_stop_training(tmp_path, capsys):
    task = NaNTask(bad={2})
    trainer = make_trainer(tmp_path / "a", task, epochs=2)
    (tmp_path / "a").mkdir()
    trainer.train()
    assert trainer.state.step == 5 and trainer.state.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert "non-finite loss" in capsys.readouterr().err

    (tmp_path / "b").mkdir()
    diverging = make_trainer(tmp_path / "b", NaNTask(bad=set(range(4, 100))), epochs=5)
    with pytest.raises(RunError, match=f"{MAX_NON_FINITE_STEPS} steps in a row"):
        diverging.train()
    assert all(torch.isfinite(p).all() for p in diverging.model.parameters())
    assert diverging.state.step == 3


def test_two_processes_resuming_one_run_at_once_one_is_refused(tmp_path, config_file):
    run = tmp_path / "run"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "attnrnn.cli", "train", str(config_file), "-o", str(run),
         "--set", "trainer.max_steps=2"],
        check=True, capture_output=True, env=environment,
    )  # fmt: skip
    command = [sys.executable, "-m", "attnrnn.cli", "train", "--resume", str(run),
               "--set", "trainer.max_steps=60"]  # fmt: skip
    processes = [
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)
        for _ in range(2)
    ]
    outcomes = sorted((p.wait(timeout=300), p.stderr.read()) for p in processes)  # type: ignore[union-attr]
    assert [status for status, _ in outcomes] == [0, 2], outcomes
    assert "being trained by another process (PID " in outcomes[1][1]
    assert metric_steps(run) == sorted(set(metric_steps(run)))


def test_resuming_a_run_that_reached_max_steps_takes_no_extra_step(tmp_path, capsys, config_file):
    """Killed after its last checkpoint but before results.json: the resume only scores."""
    run = tmp_path / "run"
    assert run_cli(capsys, "train", config_file, "-o", run)[0] == 0
    before = weights(run)
    (run / "results.json").unlink()
    assert run_cli(capsys, "train", "--resume", run)[0] == 0
    assert weights(run) == before
    assert json.loads((run / "last" / "state.json").read_text())["state"]["step"] == 6
    assert (run / "results.json").is_file()


def test_label_names_of_any_form_sort_without_crashing():
    from attnrnn.tasks.classification import sort_labels

    assert sort_labels({"10", "-2", "9"}) == ["-2", "9", "10"]
    assert sort_labels({"1" * 5000, "2"}) == ["2", "1" * 5000]
    assert sort_labels({"²", "1", "--1"}) == sorted({"²", "1", "--1"})


def test_a_task_name_that_is_not_a_string_is_a_config_error(
    tmp_path, capsys, review_files, tiny_config
):
    config = tiny_config(review_files)
    config["task"] = ["classification"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    status, _, err = run_cli(capsys, "train", path, "-o", tmp_path / "run")
    assert status == 2 and "unknown task ['classification']" in err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("labels.json", b'["neg", ', "invalid JSON"),
        ("labels.json", b"{}", "labels"),
        ("run.json", b"\xff\xfe", "UTF-8"),
        ("vocab.json", b"[1, 2", "invalid JSON"),
    ],
)
def test_a_damaged_run_file_is_one_error_line_naming_it(
    tmp_path, capsys, config_file, name, content, message
):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", config_file, "-o", run, "--set", "trainer.max_steps=2")[0] == 0
    (run / name).write_bytes(content)
    texts = tmp_path / "t.txt"
    texts.write_text("a fine film\n")
    status, _, err = run_cli(capsys, "predict", run, texts)
    assert status == 2 and err.count("\n") == 1, err
    assert name in err and message in err and "Traceback" not in err


def test_explain_escapes_terminal_control_characters_in_translations(tmp_path, capsys):
    import attnrnn
    from attnrnn.config import from_dict
    from attnrnn.tasks.translation import TranslationRunConfig

    pairs = [("ab c", "c ab"), ("de f", "f de"), ("xy z", "z xy")] * 20
    for name in ("train", "dev"):
        (tmp_path / f"{name}.src").write_text("".join(f"{a}\n" for a, _ in pairs))
        (tmp_path / f"{name}.tgt").write_text("".join(f"{b}\n" for _, b in pairs))
    config = from_dict(
        TranslationRunConfig,
        {
            "data": {"train": str(tmp_path / "train"), "dev": str(tmp_path / "dev")},
            "tokenizer": {"type": "character"},
            "model": {"embedding_size": 8, "encoder": {"hidden_size": 8},
                      "decoder": {"hidden_size": 8, "attention_size": 8}},
            "trainer": {"max_steps": 2, "progress": False, "num_threads": 1},
        },
    )  # fmt: skip
    attnrnn.train(config, tmp_path / "run")
    text = attnrnn.load(tmp_path / "run").explain("ab\x1b[2J c").text
    assert "\x1b" not in text and "\\x1b" in text


def test_a_resume_removes_temporary_files_a_killed_write_left(tmp_path, capsys, config_file):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", config_file, "-o", run, "--set", "trainer.max_steps=2")[0] == 0
    (run / ".results.json.0a1b2c3d.tmp").write_text('{"half": ')
    assert run_cli(capsys, "train", "--resume", run)[0] == 0
    assert not list(run.glob(".*.tmp"))
