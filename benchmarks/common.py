"""Shared parts of the benchmark scripts: steps cached on disk, machine facts, results files.

Each benchmark is a list of named steps. A finished step writes its result to
``benchmarks/cache/<benchmark>/<step>.json``; running the script again skips
finished steps, so a long benchmark that was stopped resumes where it was.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "cache"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from attnrnn.training.runtime import native_bf16

    return {
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16(torch.device("cpu")),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def commit() -> str:
    """The commit checked out now, with ``-dirty`` when code or configs were modified
    (results files apart)."""

    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "HEAD") or "unknown"
    dirty = git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "attnrnn",
        "benchmarks",
        "configs",
        ":(exclude)benchmarks/results",
    )
    return sha + ("-dirty" if dirty else "")


COMMIT_AT_START = commit()
"""The commit whose code this process loaded (a long run may outlive a checkout)."""


def command_line() -> str:
    return " ".join(
        ["python", *map(shlex.quote, [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])]
    )


class Steps:
    """Run named steps once each, caching their JSON results under ``cache/<name>``."""

    def __init__(self, name: str, force: bool = False, until: str | None = None) -> None:
        self.directory = WORK / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.force = force
        self.until = until  # stop the script once this step is done (--until)

    def path(self, step: str) -> Path:
        return self.directory / f"{step}.json"

    def done(self, step: str) -> bool:
        return self.path(step).exists()

    def load(self, step: str) -> dict[str, Any]:
        return json.loads(self.path(step).read_text())

    def run(self, step: str, function: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.path(step)
        if path.exists() and not self.force:
            result = json.loads(path.read_text())
            print(f"[{step}] cached: {json.dumps(result)[:200]}", flush=True)
            self._stop_after(step)
            return result
        print(f"[{step}] running", flush=True)
        started, started_at = time.monotonic(), commit()  # the code the step runs
        result = function()
        result.setdefault("seconds", round(time.monotonic() - started, 1))
        result["commit"] = started_at
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(result, indent=2))
        os.replace(temporary, path)
        print(f"[{step}] done: {json.dumps(result)[:200]}", flush=True)
        self._stop_after(step)
        return result

    def _stop_after(self, step: str) -> None:
        if step == self.until:
            print(f"stopped after step {step} (--until); run again to go on", flush=True)
            raise SystemExit(0)


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` with command, commit and machine."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        **results,
        "command": command_line(),
        "commit": COMMIT_AT_START,
        "machine": machine(),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def attnrnn_text(*arguments: str) -> str:
    """Run the ``attnrnn`` CLI in this interpreter's environment; return its output."""
    command = [sys.executable, "-m", "attnrnn.cli", *arguments]
    print("$ attnrnn " + " ".join(map(shlex.quote, arguments)), flush=True)
    completed = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if completed.returncode:
        raise SystemExit(f"attnrnn {arguments[0]} failed with status {completed.returncode}")
    return completed.stdout


def attnrnn(*arguments: str) -> dict[str, Any]:
    """Run the ``attnrnn`` CLI; return its JSON output."""
    return json.loads(attnrnn_text(*arguments))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(
    dtype: torch.dtype, device: torch.device, seconds: float = 2.0, largest: int = 8192
) -> float:
    """The best FLOP/s of square matmuls: the device's practical peak, sized by time.

    The size doubles from 256 while one product takes under a tenth of ``seconds`` (up to
    ``largest``), then products of that size repeat for about ``seconds``. A fixed size
    would take minutes where a dtype is emulated (bf16 on a CPU without AVX512-BF16 or
    AMX runs about 40 times slower than fp32) and be too small for a fast device.
    """

    def one(size: int) -> float:
        a = torch.randn(size, size, dtype=dtype, device=device)
        b = torch.randn(size, size, dtype=dtype, device=device)
        synchronize(device)
        started = time.perf_counter()
        a @ b
        synchronize(device)
        return time.perf_counter() - started

    size = 256
    while size < largest and one(size) < seconds / 10:
        size *= 2
    best, spent = float("inf"), 0.0
    while spent < seconds:
        elapsed = one(size)
        best, spent = min(best, elapsed), spent + elapsed
    return 2 * size**3 / best


def sst2_scratch_overrides(data: Path) -> list[str]:
    """``--set`` overrides of configs/sst2.yaml for SST-2 from scratch (no word vectors),
    the data under ``data`` (the shared data folder)."""
    return [
        f"data.train={data}/sst/trees/train.txt",
        f"data.dev={data}/sst/trees/dev.txt",
        f"data.test={data}/sst/trees/test.txt",
        "pretrained.vectors=null",
        "pretrained.vocab_from_vectors=0",
        "model.freeze_embeddings=false",
    ]


# The language model of benchmarks/pretrained.py (step "lm"), which the classifier
# benchmarks fine-tune from.
LANGUAGE_MODEL = WORK / "pretrained" / "runs" / "lm"


def language_model_step() -> dict[str, Any]:
    """The cached result of benchmarks/pretrained.py's language model; exits with a
    message when it has not finished."""
    path = WORK / "pretrained" / "lm.json"
    if not path.exists() or not (LANGUAGE_MODEL / "best").exists():
        raise SystemExit(
            f"{LANGUAGE_MODEL} is not trained yet: run python benchmarks/pretrained.py first"
        )
    return json.loads(path.read_text())


def from_language_model() -> list[str]:
    """``--set`` overrides that start a classifier config from the language model instead
    of word vectors, its embedding and encoder sized as the language model's."""
    import yaml

    model = yaml.safe_load((LANGUAGE_MODEL / "config.yaml").read_text())["model"]
    return [
        "pretrained.vectors=null",
        "pretrained.vocab_from_vectors=0",
        f"pretrained.encoder={LANGUAGE_MODEL}",
        "model.freeze_embeddings=false",
        f"model.embedding_size={model['embedding_size']}",
        f"model.encoder.cell={model['encoder']['cell']}",
        f"model.encoder.hidden_size={model['encoder']['hidden_size']}",
    ]
