"""What a user bringing a little data of their own runs into (issue 18): embeddings left
frozen at random, files in another encoding, a file read by the wrong reader."""

from __future__ import annotations

import safetensors.torch

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
