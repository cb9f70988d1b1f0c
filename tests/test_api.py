"""The Python API on a classification run: load, concurrent calls, errors."""

from __future__ import annotations

import threading

import pytest

import attnrnn
from attnrnn.config import from_dict
from attnrnn.errors import ConfigError, RunError
from attnrnn.tasks.classification import ClassificationRunConfig, Classifier

TEXTS = ["a fine film", "the plot was dull but the music was wonderful", "bad", "not good at all"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, review_files, tiny_config):
    directory = tmp_path_factory.mktemp("api") / "run"
    config = from_dict(ClassificationRunConfig, tiny_config(review_files, max_steps=20))
    attnrnn.train(config, directory)
    return directory


def test_load_works_out_the_task(run):
    model = attnrnn.load(run, device="cpu")
    assert isinstance(model, Classifier) and model.task.name == "classification"
    assert model.predict(TEXTS)[1].tokens[:3] == ["the", "plot", "was"]


def test_concurrent_calls_give_the_answers_of_sequential_ones(run):
    model = attnrnn.load(run)
    expected = [p.probabilities for p in model.predict(TEXTS)]
    answers: list = [None] * 8
    errors: list = []

    def call(slot: int) -> None:
        try:
            answers[slot] = [p.probabilities for p in model.predict(TEXTS)]
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=call, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(answer == expected for answer in answers)


def test_load_errors_are_one_clear_line(run, tmp_path):
    with pytest.raises(RunError, match="no such run directory"):
        attnrnn.load(tmp_path / "missing")
    with pytest.raises(ConfigError, match="int8 quantization is not available for classification"):
        attnrnn.load(run, int8=True)
    with pytest.raises(ConfigError, match="takes no options"):
        attnrnn.load(run).predict(TEXTS, beam=3)
