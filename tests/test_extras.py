"""Optional dependencies: the core imports without them, and a missing one names its extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attnrnn.extras import PROVIDERS, MissingDependency, require


def test_a_missing_library_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jiwer", None)  # makes `import jiwer` fail
    with pytest.raises(MissingDependency, match=r"jiwer package: pip install 'attnrnn\[speech\]'"):
        require("jiwer")


def test_the_package_and_the_cli_load_without_any_optional_library(tmp_path):
    blocked = ", ".join(repr(name) for name in PROVIDERS)
    script = f"""
import sys
for name in ({blocked},):
    sys.modules[name] = None
import attnrnn, attnrnn.tasks, attnrnn.cli
attnrnn.cli.build_parser()
from attnrnn.metrics import corpus_bleu
try:
    corpus_bleu(["a"], ["a"])
except Exception as error:
    print(type(error).__name__, error)
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "MissingDependency" in completed.stdout and "attnrnn[translation]" in completed.stdout
