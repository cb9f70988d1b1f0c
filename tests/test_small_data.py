"""What a user bringing a little data of their own runs into (issue 18): embeddings left
frozen at random, files in another encoding, a file read by the wrong reader."""

from __future__ import annotations

import json
from pathlib import Path

import safetensors.torch
import yaml

import attnrnn
from attnrnn.cli import main
from attnrnn.config import from_dict
from attnrnn.tasks import runs
from attnrnn.tasks.classification import ClassificationRunConfig


def test_random_embeddings_are_never_frozen(review_files, tiny_config, tmp_path, one_thread):
    settings = tiny_config(review_files, max_steps=3)
    settings["model"]["freeze_embeddings"] = True  # as in configs/sst2.yaml, without vectors
    config = from_dict(ClassificationRunConfig, settings)
    messages: list[str] = []
    runs.train(config, tmp_path / "run", log=messages.append)
    assert any("model.freeze_embeddings is true but no pretrained" in m for m in messages)
    embedding = runs.load(tmp_path / "run", device="cpu").model.embedding.weight
    assert embedding.requires_grad
    # The optimizer trained them: it keeps Adam moments of the embedding matrix's shape.
    state = safetensors.torch.load_file(str(tmp_path / "run" / "last" / "optimizer.safetensors"))
    assert any(t.shape == embedding.shape for name, t in state.items() if "exp_avg" in name)


def cp1252_copy(source: Path, target: Path) -> Path:
    """``source`` (a UTF-8 TSV with a header) re-encoded as cp1252, "café" in every text."""
    lines = source.read_text(encoding="utf-8").splitlines()
    body = [line.replace("\t", " café\t", 1) for line in lines[1:]]
    target.write_bytes("\n".join([lines[0], *body]).encode("cp1252") + b"\n")
    return target


def test_data_encoding_reads_files_in_another_encoding(
    review_files, tiny_config, tmp_path, one_thread, capsys
):
    files = {name: cp1252_copy(path, tmp_path / path.name) for name, path in review_files.items()}
    settings = tiny_config(files, max_steps=2)
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    assert main(["train", str(config_path), "-o", str(tmp_path / "utf8")]) == 2
    error = capsys.readouterr().err
    assert f"{files['train']}:2: invalid UTF-8 byte 0xe9" in error
    assert "set data.encoding" in error and "iconv -f cp1252 -t utf-8" in error
    arguments = ["train", str(config_path), "--set", "data.encoding=cp1252"]
    assert main([*arguments, "-o", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(files["dev"])]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 200
    classifier = attnrnn.load(tmp_path / "run")
    assert "café" in classifier.assets.text.vocab.tokens  # decoded, not mojibake
    for bad, message in (("klingon", "unknown text encoding"), ("utf-16", "line by line")):
        assert main([*arguments, "--set", f"data.encoding={bad}"]) == 2
        assert message in capsys.readouterr().err


def test_a_file_is_read_by_its_extension_whatever_the_run_was_trained_on(
    review_files, tiny_config, tmp_path, one_thread, capsys
):
    settings = tiny_config(review_files, max_steps=2)
    settings["data"]["format"] = "table"  # the run was configured for TSV files
    config = from_dict(ClassificationRunConfig, settings)
    runs.train(config, tmp_path / "run", log=lambda message: None)
    rows = [line.split("\t") for line in review_files["dev"].read_text().splitlines()[1:]]
    other = tmp_path / "other.jsonl"
    other.write_text(
        "".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows)
    )
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(other)]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == len(rows)


def test_a_speech_model_whose_attention_does_not_align_is_warned_about(
    write_tones, tiny_speech_config, tmp_path, one_thread
):
    from attnrnn.tasks.speech import alignment_warnings

    manifest = write_tones(tmp_path, 20, 3)
    settings = tiny_speech_config(manifest, trainer={"max_steps": 2})
    config = runs.task_named("speech").config_from_dict(settings)
    messages: list[str] = []
    results = runs.train(config, tmp_path / "run", log=messages.append)
    # Two steps in, the attention has learned nothing: it does not follow the audio.
    assert results["dev_attention_diagonality"] < 0.5 or results["dev_attention_early_share"] > 0.5
    warnings = [message for message in messages if message.startswith("warning: ")]
    assert len(warnings) == 1 and "sequence prior rather than an alignment" in warnings[0]
    assert "model.ctc_weight" in warnings[0]
    # A model that aligns (the demo's tone recognizer: diagonality 0.99, 5% early) is not.
    assert (
        alignment_warnings({"dev_attention_diagonality": 0.99, "dev_attention_early_share": 0.05})
        == []
    )
    assert (
        len(
            alignment_warnings({"dev_attention_diagonality": 0.9, "dev_attention_early_share": 0.8})
        )
        == 1
    )
