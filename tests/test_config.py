"""Typed configuration: defaults in one place, unknown keys and bad values rejected."""

from __future__ import annotations

import os

import pytest

from attnrnn.config import EncoderConfig, apply_overrides, from_dict, load_yaml, save_yaml
from attnrnn.errors import ConfigError
from attnrnn.tasks.classification import ClassificationRunConfig


def test_defaults_fill_in_and_round_trip_through_yaml(tmp_path):
    config = from_dict(ClassificationRunConfig, {"data": {"train": "a.tsv"}})
    assert config.model.encoder == EncoderConfig()
    save_yaml(config, tmp_path / "config.yaml")
    again = from_dict(ClassificationRunConfig, load_yaml(tmp_path / "config.yaml"))
    assert again == config


def test_unknown_key_has_a_did_you_mean_hint():
    with pytest.raises(ConfigError, match=r"unknown key 'model.encoder.hiden_size'.*hidden_size"):
        from_dict(
            ClassificationRunConfig,
            {"data": {"train": "a"}, "model": {"encoder": {"hiden_size": 3}}},
        )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"model": {"encoder": {"cell": "lstn"}}}, r"'lstn' is not one of .*did you mean 'lstm'"),
        ({"model": {"encoder": {"hidden_size": 0}}}, "hidden_size must be positive"),
        ({"model": {"encoder": {"hidden_size": "big"}}}, "expected an integer"),
        ({"model": {"dropout": 1.5}}, r"dropout must be in \[0, 1\)"),
        ({"trainer": {"epochs": -1}}, "epochs must be positive"),
        ({"trainer": {"device": "tpu"}}, "device must be"),
        ({"optimizer": {"schedule": "exp"}}, "is not one of"),
        ({"trainer": {"deterministic": "yes"}}, "expected true or false"),
    ],
)
def test_bad_values_are_named(section, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ClassificationRunConfig, {"data": {"train": "a"}, **section})


def test_missing_required_field():
    with pytest.raises(ConfigError, match="train"):
        from_dict(ClassificationRunConfig, {"data": {}})


def test_overrides_parse_yaml_values():
    data = apply_overrides(
        {"data": {"train": "a"}},
        [
            "model.encoder.hidden_size=512",
            "model.encoder.bidirectional=false",
            "pretrained.vectors=null",
            "optimizer.learning_rate=3e-4",
        ],
    )
    config = from_dict(ClassificationRunConfig, data)
    assert config.model.encoder.hidden_size == 512
    assert config.model.encoder.bidirectional is False
    assert config.pretrained.vectors is None
    assert config.optimizer.learning_rate == pytest.approx(3e-4)


@pytest.mark.parametrize("override", ["novalue", "=3", "data.train.x=1"])
def test_bad_overrides(override):
    with pytest.raises(ConfigError):
        apply_overrides({"data": {"train": "a"}}, [override])


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_yaml(tmp_path / "missing.yaml")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml(path)


def test_union_of_string_and_integer_columns():
    config = from_dict(ClassificationRunConfig, {"data": {"train": "a", "text_field": 1}})
    assert config.data.text_field == 1
    assert from_dict(EncoderConfig, None) == EncoderConfig()


def test_a_section_given_in_part_keeps_the_rest_of_its_task_default():
    from attnrnn.tasks.speech import SpeechRunConfig

    config = from_dict(
        SpeechRunConfig,
        {"data": {"train": "a.tsv"}, "trainer": {"epochs": 3}, "inference": {"max_batch_size": 8}},
    )
    default = SpeechRunConfig(data=config.data)
    assert config.trainer.epochs == 3
    assert config.trainer.batch_tokens == default.trainer.batch_tokens == 20000
    assert config.inference.max_batch_size == 8
    assert config.inference.batch_tokens == default.inference.batch_tokens
    with pytest.raises(ConfigError, match=r"trainer\.epochs: expected an integer"):
        from_dict(SpeechRunConfig, {"data": {"train": "a"}, "trainer": {"epochs": "x"}})


def test_save_yaml_never_writes_through_a_planted_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml.tmp").symlink_to(outside)  # the temporary name of old versions
    config = from_dict(ClassificationRunConfig, {"data": {"train": "a.tsv"}})
    save_yaml(config, run / "config.yaml")
    assert outside.read_text() == "keep me\n"
    assert from_dict(ClassificationRunConfig, load_yaml(run / "config.yaml")) == config


def test_save_yaml_on_a_full_disk_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full(*_arguments):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    config = from_dict(ClassificationRunConfig, {"data": {"train": "a.tsv"}})
    with pytest.raises(ConfigError, match=r"cannot write .*config\.yaml: No space left on device"):
        save_yaml(config, tmp_path / "config.yaml")
    assert list(tmp_path.iterdir()) == []
