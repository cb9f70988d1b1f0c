"""`attnrnn diagnose` end to end on tiny runs, and its user errors."""

from __future__ import annotations

import json

import pytest
import yaml

from attnrnn.cli import main

pytest.importorskip("captum")
pytest.importorskip("sklearn")

CLASSIFIER_SECTIONS = [
    "importance_agreement",
    "counterfactual_attention",
    "erasure",
    "uniform_attention",
    "focus",
    "seed_variance",
    "mlp_transfer",
]


def run_cli(capsys, *arguments):
    status = main(list(arguments))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def classifier_runs(tmp_path_factory, review_files, tiny_config):
    """Two tiny sentiment runs that differ only in the seed."""
    folder = tmp_path_factory.mktemp("diagnose")
    runs = []
    for seed in (1, 2):
        config = tiny_config(review_files, max_steps=40, seed=seed)
        path = folder / f"config{seed}.yaml"
        path.write_text(yaml.safe_dump(config))
        run = folder / f"run{seed}"
        assert main(["train", str(path), "-o", str(run)]) == 0
        runs.append(run)
    return runs


def test_diagnose_classifier_writes_json_and_html(classifier_runs, capsys, tmp_path):
    first, second = classifier_runs
    output = tmp_path / "out"
    status, out, err = run_cli(
        capsys,
        "diagnose",
        str(first),
        "--limit",
        "12",
        "--compare",
        str(second),
        "--mlp-train",
        "200",
        "--output",
        str(output),
    )
    assert status == 0, err
    assert f"wrote {output / 'diagnostics.json'}" in out
    document = json.loads((output / "diagnostics.json").read_text())
    assert document["task"] == "classification" and document["examples"] == 12
    sections = {section["name"]: section for section in document["sections"]}
    assert list(sections) == CLASSIFIER_SECTIONS
    agreement = sections["importance_agreement"]["summary"]
    for method in ("gradient_x_input", "integrated_gradients", "leave_one_out"):
        assert -1 <= agreement[f"median_kendall_tau_{method}"] <= 1
        assert len(sections["importance_agreement"]["distributions"][f"kendall_tau_{method}"]) == 12
    counterfactual = sections["counterfactual_attention"]["summary"]
    assert 0 <= counterfactual["median_permutation_median_tvd"] <= 1
    assert 0 <= counterfactual["median_adversarial_jsd"] <= 1
    erasure = sections["erasure"]["summary"]
    for order in ("attention", "random", "gradient"):
        assert 0 <= erasure[f"flip_rate_{order}_k1"] <= 1
    uniform = sections["uniform_attention"]["summary"]
    assert uniform["accuracy_drop"] == pytest.approx(
        uniform["accuracy"] - uniform["accuracy_uniform_attention"], abs=1e-4
    )
    focus = sections["focus"]["summary"]
    assert 0 <= focus["mean_filler_mass"] <= 1 and 0 < focus["mean_filler_share"] < 1
    assert sections["seed_variance"]["summary"]["runs_compared"] == 1
    assert 0 <= sections["seed_variance"]["summary"]["median_jsd"] <= 1
    transfer = sections["mlp_transfer"]["summary"]
    assert transfer["training_texts"] == 200
    assert 0 <= transfer["uniform_accuracy"] <= 1
    page = (output / "diagnostics.html").read_text()
    assert page.count("<svg") >= 10 and "Does attention rank tokens" in page


def test_diagnose_defaults_to_the_run_folder_and_report_shows_it(classifier_runs, capsys):
    run = classifier_runs[0]
    status, _, err = run_cli(capsys, "diagnose", str(run), "--limit", "3", "--mlp-train", "0")
    assert status == 0, err
    document = json.loads((run / "diagnostics" / "diagnostics.json").read_text())
    assert "mlp_transfer" not in {section["name"] for section in document["sections"]}
    status, _, err = run_cli(capsys, "report", str(run), "--examples", "0")
    assert status == 0, err
    assert "Does attention rank tokens" in (run / "report.html").read_text()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--limit", "0"], "limit must be at least 1"),
        (["--alignments", "x.txt"], "--alignments is for translation"),
        (["--data", "missing.tsv"], "missing.tsv"),
    ],
)
def test_diagnose_user_errors(classifier_runs, capsys, arguments, message):
    status, out, err = run_cli(capsys, "diagnose", str(classifier_runs[0]), *arguments)
    assert status == 2 and out == ""
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_diagnose_missing_run(capsys, tmp_path):
    status, _, err = run_cli(capsys, "diagnose", str(tmp_path / "nothing"))
    assert status == 2 and err.startswith("error:")


def test_faithfulness_options_train(review_files, tiny_config, tmp_path, capsys):
    config = tiny_config(review_files, max_steps=4)
    config["model"]["pooling"].update(diversity_weight=0.5, importance_weight=1.0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    status, out, err = run_cli(capsys, "train", str(path), "-o", str(tmp_path / "run"))
    assert status == 0, err
    assert json.loads(out)["dev_loss"] > 0
