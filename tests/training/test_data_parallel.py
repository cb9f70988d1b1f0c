"""Data-parallel training end to end (issue 17): every task trained by two processes under
torchrun (gloo on the CPU), its run loaded and used in one process; exact resume of a
two-process run; two processes against one accumulating two batches; two simulated
machines on loopback; a killed process; ``train --nproc``; precision settings."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
import yaml

import attnrnn
from attnrnn.data.dates import split_date_pairs, write_parallel

TIMEOUT = 240  # seconds a torchrun job may take in these tests before it counts as hung


def torchrun(*arguments: Any, nproc: int = 2, env: dict[str, str] | None = None, **options: Any):
    """``torchrun --standalone --nproc_per_node=N -m attnrnn ARGUMENTS``, finished."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={nproc}", "-m", "attnrnn", *map(str, arguments)]
    return run(command, env, **options)


def run(command: list[str], env: dict[str, str] | None = None, **options: Any):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, env=environment, **options
    )


def failure_report(stderr: str) -> str:
    """The workers' own messages (a C++ abort's reason comes first) and torchrun's summary."""
    if len(stderr) <= 6000:
        return stderr
    return f"{stderr[:3000]}\n[...]\n{stderr[-3000:]}"


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def weights(run_directory: Path, name: str = "last") -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(run_directory / name / "model.safetensors"))


def metrics_rows(run_directory: Path) -> list[dict[str, str]]:
    """metrics.csv without the wall-clock column."""
    lines = (run_directory / "metrics.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    return [{k: v for k, v in row.items() if k != "elapsed_seconds"} for row in rows]


# --------------------------------------------------------------------------- every task


def summaries(path: Path, count: int, seed: int) -> Path:
    generator = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(count):
            name, thing = generator.choice(("ann", "bob", "eve")), generator.choice(("tea", "jam"))
            dialogue = f"#Person1#: Hi {name}, some {thing}?\n#Person2#: Yes, {thing} please."
            record = {"dialogue": dialogue, "summary": f"#Person2# wants {thing}."}
            handle.write(json.dumps(record) + "\n")
    return path


def task_config(task: str, folder: Path, fixtures: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A tiny configuration of ``task`` on data written to ``folder``, and an input to
    predict from its run."""
    trainer = {"epochs": 50, "max_steps": 6, "eval_every_steps": 3, "num_threads": 1}
    trainer["progress"] = False
    if task == "classification":
        config = fixtures["tiny_config"](fixtures["review_files"], **trainer)
        return config, "a great film"
    if task == "translation":
        for split, pairs in zip(
            ("train", "dev"), split_date_pairs(200, 10, 0, seed=3), strict=False
        ):
            write_parallel(pairs, folder / f"{split}.src", folder / f"{split}.tgt")
        config = fixtures["tiny_translation_config"](folder / "train", folder / "dev")
        config["trainer"].update(trainer)
        return config, "12 March 1999"
    if task == "summarization":
        config = {
            "task": "summarization",
            "data": {
                "train": str(summaries(folder / "train.jsonl", 120, 1)),
                "dev": str(summaries(folder / "dev.jsonl", 10, 2)),
            },
            **fixtures["tiny_summarizer"],
            "trainer": {"batch_tokens": 1500, **trainer},
            "dev_search": {"beam_size": 1, "min_length": 2},
        }
        return config, "#Person1#: Hi ann, some tea?\n#Person2#: Yes, tea please."
    if task == "speech":
        manifest = fixtures["write_tones"](folder, 40, 5)
        config = fixtures["tiny_speech_config"](manifest, trainer=trainer)
        return config, str(folder / "5-0.wav")
    assert task == "language_model"
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "to", "the", "cat"]
    lines = [" ".join(words[i % 7 :] + words[: i % 7]) for i in range(300)]
    (folder / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "task": "language_model",
        "data": {"train": str(folder / "corpus.txt"), "dev_fraction": 0.1, "max_length": 24},
        "tokenizer": {"min_freq": 1},
        "model": {"embedding_size": 16, "encoder": {"hidden_size": 16}, "adaptive_cutoffs": [6]},
        "trainer": {"batch_tokens": 200, **trainer},
    }
    return config, "the cat sat"


@pytest.fixture
def fixtures(
    review_files,
    tiny_config,
    tiny_translation_config,
    tiny_summarizer,
    write_tones,
    tiny_speech_config,
) -> dict[str, Any]:
    return locals()


@pytest.mark.parametrize(
    "task", ["classification", "translation", "summarization", "speech", "language_model"]
)
def test_every_task_trains_in_two_processes_and_loads_in_one(task, fixtures, tmp_path, one_thread):
    config, example = task_config(task, tmp_path, fixtures)
    path = write_config(tmp_path / f"{task}.yaml", config)
    completed = torchrun("train", path, "--output", tmp_path / "run")
    assert completed.returncode == 0, failure_report(completed.stderr)
    assert "data-parallel: 2 processes (gloo)" in completed.stderr
    assert completed.stderr.count("data-parallel:") == 1  # rank 0 alone logs
    printed = json.loads(completed.stdout)  # rank 0 alone prints the results
    assert printed["run"] == str(tmp_path / "run")
    run_directory = tmp_path / "run"
    rows = metrics_rows(run_directory)
    assert [row["step"] for row in rows] == ["3", "6"]  # one writer: no duplicate rows
    state = json.loads((run_directory / "last" / "state.json").read_text())
    assert state["state"]["step"] == 6 and state["state"]["world_size"] == 2
    assert len(state["rank_python_rng"]) == 1  # rank 1's random state travels with it
    model = attnrnn.load(run_directory, device="cpu")
    assert len(model.predict([example])) == 1
    assert not list(tmp_path.glob(".prepare-*")) and not list(tmp_path.glob(".staging-*"))


# --------------------------------------------------------------------------- exactness


@pytest.fixture
def classifier_config(review_files, tiny_config, tmp_path):
    def make(name: str, **trainer: Any) -> Path:
        settings = {"eval_every_steps": 4, **trainer}
        return write_config(tmp_path / f"{name}.yaml", tiny_config(review_files, **settings))

    return make


def test_a_stopped_two_process_run_resumes_exactly(classifier_config, tmp_path):
    straight = torchrun("train", classifier_config("a", max_steps=8), "-o", tmp_path / "straight")
    assert straight.returncode == 0, failure_report(straight.stderr)
    first = torchrun("train", classifier_config("b", max_steps=4), "-o", tmp_path / "resumed")
    assert first.returncode == 0, failure_report(first.stderr)
    again = torchrun("train", "--resume", tmp_path / "resumed", "--set", "trainer.max_steps=8")
    assert again.returncode == 0, failure_report(again.stderr)
    assert "resumed" in again.stderr and "resuming with" not in again.stderr
    # Dropout is on (0.1): equal weights need every process's random state restored.
    expected, actual = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert metrics_rows(tmp_path / "straight") == metrics_rows(tmp_path / "resumed")


def test_two_processes_train_like_one_accumulating_two_batches(classifier_config, tmp_path):
    no_dropout = {"model.embedding_dropout": 0, "model.encoder_dropout": 0, "model.dropout": 0}
    overrides = [item for key, value in no_dropout.items() for item in ("--set", f"{key}={value}")]
    two = torchrun("train", classifier_config("c", max_steps=8), *overrides, "-o", tmp_path / "two")
    assert two.returncode == 0, failure_report(two.stderr)
    config = classifier_config("d", max_steps=4, accumulate_steps=2)
    one = run(
        [sys.executable, "-m", "attnrnn", "train", config, *overrides, "-o", tmp_path / "one"]
    )
    assert one.returncode == 0, failure_report(one.stderr)
    assert "gradient accumulation: 1 process adding up 2 batches" in one.stderr
    # Resumed in two processes without accumulation: the same 2 batches per step.
    resumed = torchrun(
        "train", "--resume", tmp_path / "one", "--set", "trainer.max_steps=8",
        "--set", "trainer.accumulate_steps=1",
    )  # fmt: skip
    assert resumed.returncode == 0, failure_report(resumed.stderr)
    assert "the same 2 batches per step" in resumed.stderr
    expected, actual = weights(tmp_path / "two"), weights(tmp_path / "one")
    for name in expected:  # the same batches and updates; only the summation order differs
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-5)
    losses = [float(row["train_loss"]) for row in metrics_rows(tmp_path / "two")]
    again = [float(row["train_loss"]) for row in metrics_rows(tmp_path / "one")]
    assert again == pytest.approx(losses, rel=1e-5)


def test_rank0s_dev_checks_decide_early_stopping_and_the_schedule_for_all(
    classifier_config, tmp_path
):
    config = classifier_config("l", max_steps=40, early_stopping_patience=2, min_evaluations=1)
    frozen = ["--set", "optimizer.learning_rate=1e-9", "--set", "optimizer.warmup_steps=0"]
    plateau = ["--set", "optimizer.schedule=plateau", "--set", "optimizer.plateau_patience=1"]
    completed = torchrun("train", config, *frozen, *plateau, "-o", tmp_path / "run")
    assert completed.returncode == 0, failure_report(completed.stderr)  # no process left waiting
    assert "early stopping" in completed.stderr
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text())["state"]
    assert state["stop_reason"] == "early_stopping" and state["step"] == 12  # checks at 4, 8, 12
    assert state["plateau"]["factor"] < 1.0  # the rate was halved on every process alike


def test_resuming_with_another_step_size_says_what_changes(classifier_config, tmp_path):
    first = torchrun("train", classifier_config("e", max_steps=4), "-o", tmp_path / "run")
    assert first.returncode == 0, failure_report(first.stderr)
    alone = run([sys.executable, "-m", "attnrnn", "train", "--resume", tmp_path / "run", "--set",
                 "trainer.max_steps=6"])  # fmt: skip
    assert alone.returncode == 0, failure_report(alone.stderr)
    assert "a step now takes 1 batches instead of 2" in alone.stderr
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text())["state"]
    assert state["step"] == 6 and state["world_size"] == 1


# --------------------------------------------------------------------------- machines, failures


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_nodes(config: Path, output: str, folders: list[Path]) -> list[tuple[int, str, str]]:
    """Two simulated machines (one process each) on loopback, machine i started in
    ``folders[i]``; (exit status, stdout, stderr) of each."""
    port = free_port()
    nodes = []
    for node, folder in enumerate(folders):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2",
                   f"--node_rank={node}", "--nproc_per_node=1", "--master_addr=127.0.0.1",
                   f"--master_port={port}", "-m", "attnrnn", "train", str(config),
                   "-o", output]  # fmt: skip
        environment = {**os.environ, "OMP_NUM_THREADS": "1"}
        nodes.append(
            subprocess.Popen(
                command,
                cwd=folder,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [node.communicate(timeout=TIMEOUT) for node in nodes]
    return [(node.returncode, *output) for node, output in zip(nodes, outputs, strict=True)]


def test_two_simulated_machines_on_loopback(classifier_config, tmp_path):
    config = classifier_config("f", max_steps=4)
    nodes = start_nodes(config, str(tmp_path / "run"), [tmp_path, tmp_path])
    assert [code for code, _, _ in nodes] == [0, 0], nodes[0][2][-2000:] + nodes[1][2][-2000:]
    assert json.loads(nodes[0][1])["run"] == str(tmp_path / "run") and nodes[1][1] == ""
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text())["state"]
    assert state["step"] == 4 and state["world_size"] == 2


def test_machines_that_do_not_share_the_run_directory_are_told_so(classifier_config, tmp_path):
    config = classifier_config("k", max_steps=4)
    folders = [tmp_path / "machine0", tmp_path / "machine1"]
    for folder in folders:
        folder.mkdir()
    nodes = start_nodes(config, "run", folders)  # "run" is a different folder on each
    assert nodes[0][0] != 0 and nodes[1][0] != 0
    assert "process 1 cannot see the run directory run that process 0 wrote" in nodes[1][2]
    assert "storage every machine shares" in nodes[1][2]


def test_a_killed_process_stops_the_job_and_the_run_stays_loadable(classifier_config, tmp_path):
    config = classifier_config("g", max_steps=40, distributed_timeout_seconds=30)
    crash = {"ATTNRNN_CRASH_AT": "after_step:6", "ATTNRNN_CRASH_RANK": "1"}
    started = time.monotonic()
    command = [sys.executable, "-m", "attnrnn", "train", config, "--nproc", "2"]
    completed = run([*command, "-o", tmp_path / "run"], env=crash)
    assert completed.returncode != 0
    assert time.monotonic() - started < 60 + 30  # startup and teardown, plus the timeout
    assert "Traceback" not in completed.stderr
    assert "error: process 1 was killed (SIGKILL)" in completed.stderr
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text())["state"]
    assert state["step"] == 4  # the checkpoint of the evaluation before the crash
    model = attnrnn.load(tmp_path / "run", device="cpu")
    assert len(model.predict(["fine"])) == 1
    resumed = torchrun("train", "--resume", tmp_path / "run", "--set", "trainer.max_steps=8")
    assert resumed.returncode == 0, failure_report(resumed.stderr)


def test_ctrl_c_stops_every_process_after_the_same_step_with_a_checkpoint(
    classifier_config, tmp_path
):
    config = classifier_config("j", epochs=1000, max_steps=100_000)
    command = [sys.executable, "-m", "attnrnn", "train", str(config), "--nproc", "2"]
    process = subprocess.Popen(
        [*command, "-o", str(tmp_path / "run")],
        start_new_session=True,  # its own process group, as a terminal's foreground job
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + TIMEOUT
    while not (tmp_path / "run" / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: every process gets SIGINT
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr[-3000:]
    assert stderr.count("interrupted: SIGINT at step") == 1  # said once, by rank 0
    step = json.loads((tmp_path / "run" / "last" / "state.json").read_text())["state"]["step"]
    assert f"interrupted: SIGINT at step {step}:" in stderr and step >= 4
    resumed = torchrun(
        "train", "--resume", tmp_path / "run", "--set", f"trainer.max_steps={step + 2}"
    )
    assert resumed.returncode == 0, failure_report(resumed.stderr)


def test_train_nproc_starts_torchrun(classifier_config, tmp_path):
    config = classifier_config("h", max_steps=2)
    completed = run([sys.executable, "-m", "attnrnn", "train", config, "--nproc", "2", "-o",
                     tmp_path / "run"])  # fmt: skip
    assert completed.returncode == 0, failure_report(completed.stderr)
    assert "data-parallel: 2 processes" in completed.stderr
    assert json.loads(completed.stdout)["run"] == str(tmp_path / "run")


def test_precision_errors_and_fallbacks(classifier_config, tmp_path, monkeypatch, capsys):
    from attnrnn.cli import main
    from attnrnn.training import runtime

    fp16 = classifier_config("i", max_steps=2, precision="fp16", device="cpu")
    assert main(["train", str(fp16), "-o", str(tmp_path / "fp16")]) == 2
    assert "fp16 needs a CUDA device" in capsys.readouterr().err
    assert main(["train", str(fp16), "--nproc", "0"]) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})  # a CPU without bf16
    assert runtime.training_precision("bf16", torch.device("cpu"), print) == "fp32"
    assert "no native bfloat16" in capsys.readouterr().out
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512_bf16"})
    assert runtime.training_precision("bf16", torch.device("cpu"), print) == "bf16"
