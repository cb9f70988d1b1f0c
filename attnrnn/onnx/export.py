"""``attnrnn export RUN --format onnx``: a run's model as ONNX graphs.

- classification: ``classifier.onnx``, (tokens (B, S), lengths (B,)) -> (class
  probabilities (B, C), attention (B, r, S));
- translation: ``encoder.onnx``, (source (B, S), lengths (B,)) -> the decoder's
  first state, and ``step.onnx``, (previous tokens (N,), state...) ->
  (log-probabilities (N, V), attention (N, S), the new state...). Search runs
  outside the graphs (:mod:`attnrnn.onnx.search`), as in PyTorch, where every
  step is a function of tensors;
- speech: ``encoder.onnx``, (normalized features (B, T, F), frames (B,)) -> (CTC
  log-posteriors, their frames, the speller's first state...), and the speller's
  ``step.onnx`` as translation's; the log-mel front end and the joint CTC scores run in
  numpy (:mod:`attnrnn.data.audio_files`, :mod:`attnrnn.onnx.ctc`);
- summarization (pointer-generator): the same two graphs over extended source ids;
  the step also takes the rows' extended source ids and ``extra`` (X,), whose length
  is the most unknown words of one source, and gives log-probabilities over V + X and
  the generation probability p_gen of every row.

The graphs come from :func:`torch.onnx.export` (the torch.export-based exporter)
of the model's own ``forward`` / ``encode`` / ``step``: nothing is rewritten for
the export but the encoder's RNN over time (:func:`attnrnn.nn.encoders.exported_states`),
so that the graph keeps a loop of dynamic length: a GRU or LSTM layer becomes ONNX's own
GRU / LSTM operator with each row's length (:func:`rnn_layer_onnx`), a plain RNN a scan.
Batch and length axes are dynamic. Every graph is checked with
the ONNX checker, and the export runs each graph once with ONNX Runtime on the
example and compares it with PyTorch before it writes anything.

The folder also holds the run's config, tokenizer and vocabulary files and
``onnx.json``, which :mod:`attnrnn.onnx` reads (no PyTorch needed there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

import attnrnn
from attnrnn.errors import ConfigError, RunError
from attnrnn.extras import require
from attnrnn.nn.decoders import DecoderState
from attnrnn.onnx import MANIFEST
from attnrnn.onnx.runtime import FORMAT, VERSION
from attnrnn.tasks.base import TrainedModel
from attnrnn.training import files

OPSET = 18
# The ONNX outputs must equal PyTorch's on the export example to this tolerance.
TOLERANCE = 1e-4


def export_onnx(run: str | Path, output: str | Path, int8: bool = False) -> Path:
    """Export the best checkpoint of ``run`` to a new folder ``output``; ``int8``:
    also quantize the graphs' weights with ONNX Runtime's dynamic quantization."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        require(module)
    model = attnrnn.load(run, device="cpu")
    exporter = EXPORTERS.get(model.task.name)
    if exporter is None:
        raise ConfigError(
            f"ONNX export of {model.task.name} runs is not available; "
            f"it is for: {', '.join(EXPORTERS)}"
        )
    source, output = Path(run), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with files.staged_run_directory(output) as staging, torch.no_grad():
        manifest = exporter(model, staging)
        if int8:
            quantize_graphs(staging, manifest["graphs"])
        if "step" in manifest["graphs"]:  # beam search picks its candidates with it
            write_top_k_graph(staging / TOP_K)
            manifest["graphs"]["topk"] = TOP_K
        manifest.update(
            format=FORMAT,
            version=VERSION,
            opset=OPSET,
            int8=int8,
            task=model.task.name,
            attnrnn_version=attnrnn.__version__,
            exported_from=str(source),
        )
        shutil.copy(source / "config.yaml", staging / "config.yaml")
        model.assets.save(staging)
        files.write_json_atomic(staging / MANIFEST, manifest)
    return output


# --------------------------------------------------------------------------- graphs


def export_graph(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic: dict[str, dict[int, str]],
    varargs: bool = False,
) -> None:
    """One graph: exported, checked, run once by ONNX Runtime on ``example`` and compared
    with ``module``'s outputs. ``dynamic``: the named dynamic axes of each input;
    ``varargs``: the module's ``forward`` is ``(first, *rest)``."""
    import onnx

    dims: dict[str, Any] = {}
    shapes: tuple[Any, ...] = tuple(
        {axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in axes.items()} or None
        for axes in (dynamic.get(input_name, {}) for input_name in input_names)
    )
    if varargs:  # forward(first, *rest): torch.export wants (first, (rest...))
        shapes = (shapes[0], shapes[1:])
    module.eval()
    # The exporter reports its progress on standard output and warns about torch
    # internals; the command's output is its own.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed..."
        program = torch.onnx.export(
            module,
            example,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=shapes,
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
            custom_translation_table={torch.ops.attnrnn.rnn_layer.default: rnn_layer_onnx},
        )
        exporter_log.setLevel(level)
    if program is None:  # pragma: no cover - dynamo export always returns a program
        raise RunError(f"{path.name}: the ONNX exporter returned nothing")
    program.save(str(path))
    onnx.checker.check_model(str(path), full_check=True)
    outputs = module(*example)
    outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
    expected = [output.numpy() for output in outputs]
    got = run_graph(path, dict(zip(input_names, (x.numpy() for x in example), strict=True)))
    for name, want, have in zip(output_names, expected, got, strict=True):
        if want.dtype == bool:
            same = bool((want == have).all())
        else:
            same = bool(np.allclose(want, have, atol=TOLERANCE, rtol=TOLERANCE))
        if not same:
            raise RunError(
                f"{path.name}: the ONNX output {name!r} differs from PyTorch's on the export "
                "example; the model uses an operation the exporter does not carry over"
            )


# ONNX's gate order, as rows of PyTorch's weights: GRU z, r, n (PyTorch r, z, n); LSTM
# i, o, f, c (PyTorch i, f, g, o).
ONNX_GATES = {"gru": (1, 0, 2), "lstm": (0, 3, 1, 2)}


def rnn_layer_onnx(
    inputs: Any,
    lengths: Any,
    weight_ih: Any,
    weight_hh: Any,
    bias_ih: Any,
    bias_hh: Any,
    cell: str,
    hidden_size: int,
    reverse: bool,
) -> Any:
    """:func:`attnrnn.nn.encoders.rnn_layer` as ONNX's GRU / LSTM operator (onnxscript),
    with each row's length as ``sequence_lens``: ONNX Runtime runs the loop over time in
    one kernel, and in reverse reads each row backwards from its own last step."""
    from onnxscript import opset18

    op: Any = opset18  # onnxscript's operator signatures want typed ONNX values
    H = hidden_size
    rows = [g * H + i for g in ONNX_GATES[cell] for i in range(H)]
    order = op.Constant(value_ints=rows)

    def gates(weight: Any) -> Any:  # PyTorch's gate rows in ONNX's order, one direction
        return op.Unsqueeze(op.Gather(weight, order, axis=0), [0])

    biases = op.Concat(gates(bias_ih), gates(bias_hh), axis=1)  # (1, 2 G H): Wb then Rb
    steps = op.Transpose(inputs, perm=[1, 0, 2])  # (S, B, E)
    sequence_lens = op.Cast(lengths, to=6)  # int32
    direction = "reverse" if reverse else "forward"
    arguments = (steps, gates(weight_ih), gates(weight_hh), biases, sequence_lens)
    if cell == "gru":
        states, _ = op.GRU(*arguments, hidden_size=H, direction=direction, linear_before_reset=1)
    else:
        states, _, _ = op.LSTM(*arguments, hidden_size=H, direction=direction)
    return op.Transpose(op.Squeeze(states, [1]), perm=[1, 0, 2])  # (S, 1, B, H) -> (B, S, H)


TOP_K = "topk.onnx"


def write_top_k_graph(path: Path) -> None:
    """``topk.onnx``: (scores (B, N) float32, k (1,) int64) -> the k largest of every row
    and their indices (B, k), best first, ties by the lower index (ONNX's TopK). Beam
    search's choice of candidates among K x V: several times faster in ONNX Runtime than
    numpy's partial sort."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("TopK", ["scores", "k"], ["values", "indices"], axis=1, sorted=1)],
        "top_k",
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["rows", "candidates"]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info("values", TensorProto.FLOAT, ["rows", "k"]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["rows", "k"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def run_graph(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return cast(list[np.ndarray], session.run(None, feeds))


def quantize_graphs(folder: Path, graphs: dict[str, str]) -> None:
    """int8 weights for every graph's matrix products (ONNX Runtime's dynamic
    quantization: activations quantized on the fly, per tensor)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "Please consider to run pre-processing before quantization"
    try:
        for name in graphs.values():
            path = folder / name
            quantized = path.with_suffix(".int8.onnx")
            quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
            quantized.replace(path)
    finally:
        root.setLevel(level)


# --------------------------------------------------------------------------- classification


class ClassifierGraph(nn.Module):
    """(tokens, lengths) -> (probabilities, attention) of a text classifier."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(tokens, lengths)
        return torch.softmax(output.logits.float(), dim=-1), output.attention.float()


def export_classifier(trained: TrainedModel, folder: Path) -> dict[str, Any]:
    vocab = trained.assets.text.vocab
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(2, len(vocab), (3, 7), generator=generator)
    lengths = torch.tensor([7, 4, 1])
    tokens[1, 4:] = tokens[2, 1:] = vocab.pad_index
    export_graph(
        ClassifierGraph(trained.model),
        (tokens, lengths),
        folder / "classifier.onnx",
        ["tokens", "lengths"],
        ["probabilities", "attention"],
        {"tokens": {0: "batch", 1: "length"}, "lengths": {0: "batch"}},
    )
    return {"graphs": {"classifier": "classifier.onnx"}}


# --------------------------------------------------------------------------- sequence models


def state_fields(state: DecoderState) -> list[str]:
    """The fields a model's decoder state has (the others are None for it)."""
    return [
        item.name for item in dataclasses.fields(state) if getattr(state, item.name) is not None
    ]


# The fields a step changes; the others (memory, keys, mask) are read only.
CHANGING = ("hidden", "cell", "input_feed", "previous_weights", "coverage")


class EncoderGraph(nn.Module):
    """(source, lengths) -> the decoder's first state, field by field."""

    def __init__(self, model: nn.Module, fields: list[str]) -> None:
        super().__init__()
        self.model, self.fields = model, fields

    def forward(self, source: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = cast(Any, self.model)
        state = model.init_state(model.encode(source, lengths))
        return tuple(getattr(state, name) for name in self.fields)


class StepGraph(nn.Module):
    """(previous tokens, state...) -> (log-probabilities, attention, changed state...)."""

    def __init__(self, model: nn.Module, fields: list[str]) -> None:
        super().__init__()
        self.model, self.fields = model, fields

    def step(self, previous: torch.Tensor, state: DecoderState) -> Any:
        """The model's ``(first output, new state, attention)`` for one step."""
        return cast(Any, self.model).step(previous, state)

    def forward(self, previous: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values: dict[str, Any] = {item.name: None for item in dataclasses.fields(DecoderState)}
        values.update(zip(self.fields, tensors, strict=True))
        first, state, attention = self.step(previous, DecoderState(**values))
        changed = tuple(getattr(state, name) for name in self.fields if name in CHANGING)
        return (first, attention, *changed)


def sequence_axes(state: DecoderState, fields: list[str], rows: str) -> dict[str, dict[int, str]]:
    """Dynamic axes of the state tensors: rows first, the source length where it is."""
    source_length = state.memory.size(1)
    axes = {}
    for name in fields:
        tensor = getattr(state, name)
        axes[name] = {0: rows}
        if tensor.dim() >= 2 and tensor.size(1) == source_length and name != "hidden":
            axes[name][1] = "source_length"
    return axes


STEP_EXAMPLE_ROWS = (0, 0, 1, 2, 2)  # beams: rows repeat


def export_step(
    model: Any,
    state: DecoderState,
    fields: list[str],
    folder: Path,
    graph: type[StepGraph] = StepGraph,
    first_output: str = "log_probs",
) -> dict[str, Any]:
    """``step.onnx`` (``graph``, whose first output is ``first_output``) of a model whose
    first decoder state is ``state`` (3 rows), and the manifest of an encoder + step
    export."""
    rows = state.select(torch.tensor(STEP_EXAMPLE_ROWS))
    previous = torch.tensor([model.bos_index, 5, 6, 7, 8])
    changing = [name for name in fields if name in CHANGING]
    export_graph(
        graph(model, fields),
        (previous, *(getattr(rows, name) for name in fields)),
        folder / "step.onnx",
        ["previous", *fields],
        [first_output, "attention", *(f"next_{name}" for name in changing)],
        {"previous": {0: "rows"}, **sequence_axes(state, fields, "rows")},
        varargs=True,
    )
    return {
        "graphs": {"encoder": "encoder.onnx", "step": "step.onnx"},
        "state": fields,
        "changing_state": changing,
        "special_tokens": {
            "pad": model.pad_index,
            "bos": model.bos_index,
            "eos": model.eos_index,
        },
    }


class FeatureStepGraph(StepGraph):
    """(previous tokens, state...) -> (attentional vectors, attention, changed state...):
    a translation decoder's step up to its output layer, which :class:`OutputGraph` (the
    whole vocabulary) or :class:`ShortlistOutputGraph` (a lexical shortlist) applies."""

    def step(self, previous: torch.Tensor, state: DecoderState) -> Any:
        return cast(Any, self.model).step_features(previous, state)


class OutputGraph(nn.Module):
    """Attentional vectors (N, A) -> log-probabilities (N, V) over the whole vocabulary."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = cast(Any, self.model).output_logits(features)
        return torch.log_softmax(logits.float(), dim=-1)


class ShortlistOutputGraph(nn.Module):
    """(attentional vectors (N, A), the output layer's weight (V', A) and bias (V',) rows
    of a shortlist) -> log-probabilities (N, V') normalized over those outputs."""

    def forward(
        self, features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        return torch.log_softmax(nn.functional.linear(features, weight, bias).float(), dim=-1)


# The output layer's weights for shortlists, as numpy arrays (np.load, no pickle).
OUTPUT_WEIGHT, OUTPUT_BIAS = "output_weight.npy", "output_bias.npy"


def export_translation_step(
    trained: TrainedModel, state: DecoderState, fields: list[str], folder: Path
) -> dict[str, Any]:
    """``step.onnx`` (the step up to the output layer), ``output.onnx`` (the output layer
    over the whole vocabulary) and ``shortlist_output.onnx`` (over rows given at run time),
    the output layer's weight and bias as ``.npy`` files, and the run's lexical shortlist
    when it has one: a translation export, whose predictor can score only a shortlist."""
    from attnrnn.data.shortlists import SHORTLIST_FILE

    model = cast(Any, trained.model)
    manifest = export_step(model, state, fields, folder, FeatureStepGraph, "features")
    rows = state.select(torch.tensor(STEP_EXAMPLE_ROWS))
    previous = torch.tensor([model.bos_index, 5, 6, 7, 8])
    features = model.step_features(previous, rows)[0]  # (5, A)
    export_graph(
        OutputGraph(model),
        (features,),
        folder / "output.onnx",
        ["features"],
        ["log_probs"],
        {"features": {0: "rows"}},
    )
    layer = model.output_layer
    weight = layer.weight.detach().float()
    bias = layer.bias.detach().float() if layer.bias is not None else weight.new_zeros(len(weight))
    kept = torch.tensor([0, 2, 3, 5])  # an example shortlist of rows
    export_graph(
        ShortlistOutputGraph(),
        (features, weight[kept], bias[kept]),
        folder / "shortlist_output.onnx",
        ["features", "weight", "bias"],
        ["log_probs"],
        {"features": {0: "rows"}, "weight": {0: "outputs"}, "bias": {0: "outputs"}},
    )
    np.save(folder / OUTPUT_WEIGHT, weight.numpy(), allow_pickle=False)
    np.save(folder / OUTPUT_BIAS, bias.numpy(), allow_pickle=False)
    shortlist = Path(trained.directory or ".") / SHORTLIST_FILE
    if trained.directory is not None and shortlist.is_file():
        shutil.copy(shortlist, folder / SHORTLIST_FILE)
    manifest["graphs"].update(output="output.onnx", shortlist_output="shortlist_output.onnx")
    manifest["output_layer"] = {"weight": OUTPUT_WEIGHT, "bias": OUTPUT_BIAS}
    manifest["shortlist"] = SHORTLIST_FILE if (folder / SHORTLIST_FILE).is_file() else None
    return manifest


def export_translator(trained: TrainedModel, folder: Path) -> dict[str, Any]:
    model = cast(Any, trained.model)
    vocab = trained.assets.source.vocab
    generator = torch.Generator().manual_seed(0)
    source = torch.randint(4, len(vocab), (3, 7), generator=generator)
    lengths = torch.tensor([7, 4, 2])
    source[1, 4:] = source[2, 2:] = vocab.pad_index
    state = model.init_state(model.encode(source, lengths))
    fields = state_fields(state)
    export_graph(
        EncoderGraph(model, fields),
        (source, lengths),
        folder / "encoder.onnx",
        ["source", "lengths"],
        fields,
        {"source": {0: "batch", 1: "source_length"}, "lengths": {0: "batch"}},
    )
    return export_translation_step(trained, state, fields, folder)


class CopyEncoderGraph(nn.Module):
    """(extended source ids, lengths) -> the pointer-generator's first decoder state."""

    def __init__(self, model: nn.Module, fields: list[str]) -> None:
        super().__init__()
        self.model, self.fields = model, fields

    def forward(self, source: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = cast(Any, self.model)
        state = model.init_state(model.encode_with_copy(source, lengths, model.vocab_size))
        return tuple(getattr(state.decoder, name) for name in self.fields)


class CopyStepGraph(nn.Module):
    """(previous tokens, extended source ids, extra (X,), state...) -> (log-probabilities
    over V + X, attention, p_gen, changed state...). ``extra`` carries X, the most
    unknown words of one source, as its length (its values are not read)."""

    def __init__(self, model: nn.Module, fields: list[str]) -> None:
        super().__init__()
        self.model, self.fields = model, fields

    def forward(self, previous: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from attnrnn.models.pointer_generator import CopyState

        model = cast(Any, self.model)
        source_ids, extra, *state_tensors = tensors
        values: dict[str, Any] = {item.name: None for item in dataclasses.fields(DecoderState)}
        values.update(zip(self.fields, state_tensors, strict=True))
        state = CopyState(DecoderState(**values), source_ids, model.vocab_size + extra.size(0))
        log_probs, new, attention, p_gen = model.gated_step(previous, state)
        changed = tuple(getattr(new.decoder, name) for name in self.fields if name in CHANGING)
        return (log_probs, attention, p_gen, *changed)


def export_summarizer(trained: TrainedModel, folder: Path) -> dict[str, Any]:
    model = cast(Any, trained.model)
    V = model.vocab_size
    generator = torch.Generator().manual_seed(0)
    source = torch.randint(4, V, (3, 9), generator=generator)
    source[0, 2], source[0, 5], source[1, 1] = V, V + 2, V + 1  # unknown words: copy ids
    lengths = torch.tensor([9, 5, 2])
    source[1, 5:] = source[2, 2:] = model.pad_index
    state = model.init_state(model.encode_with_copy(source, lengths, V + 3))
    fields = state_fields(state.decoder)
    export_graph(
        CopyEncoderGraph(model, fields),
        (source, lengths),
        folder / "encoder.onnx",
        ["source", "lengths"],
        fields,
        {"source": {0: "batch", 1: "source_length"}, "lengths": {0: "batch"}},
    )
    rows = state.select(torch.tensor([0, 0, 1, 2, 2]))
    previous = torch.tensor([model.bos_index, 5, V + 1, 7, V])
    extra = torch.zeros(3)
    changing = [name for name in fields if name in CHANGING]
    axes = sequence_axes(state.decoder, fields, "rows")
    axes.update(source_ids={0: "rows", 1: "source_length"}, extra={0: "unknown_words"})
    export_graph(
        CopyStepGraph(model, fields),
        (previous, rows.source_ids, extra, *(getattr(rows.decoder, name) for name in fields)),
        folder / "step.onnx",
        ["previous", "source_ids", "extra", *fields],
        ["log_probs", "attention", "generation_probability"]
        + [f"next_{name}" for name in changing],
        {"previous": {0: "rows"}, **axes},
        varargs=True,
    )
    return {
        "graphs": {"encoder": "encoder.onnx", "step": "step.onnx"},
        "state": fields,
        "changing_state": changing,
        "copy": bool(model.copy),
        "vocab_size": V,
        "special_tokens": {
            "pad": model.pad_index,
            "bos": model.bos_index,
            "eos": model.eos_index,
            "unk": model.unk_index,
        },
    }


class ListenerGraph(nn.Module):
    """(features, lengths) -> (CTC log-posteriors, valid listener frames, the speller's
    first state...)."""

    def __init__(self, model: nn.Module, fields: list[str]) -> None:
        super().__init__()
        self.model, self.fields = model, fields

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = cast(Any, self.model)
        encoded = model.encode(features, lengths)
        ctc_log_probs, ctc_lengths = model.ctc_log_probs(encoded)
        state = model.init_state(encoded)
        return (ctc_log_probs, ctc_lengths, *(getattr(state, name) for name in self.fields))


def export_recognizer(trained: TrainedModel, folder: Path) -> dict[str, Any]:
    model = cast(Any, trained.model)
    bins = trained.config.features.num_mel_bins
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(3, 41, bins, generator=generator)
    lengths = torch.tensor([41, 30, 17])
    features[1, 30:] = features[2, 17:] = 0.0
    encoded = model.encode(features, lengths)
    state = model.init_state(encoded)
    fields = state_fields(state)
    export_graph(
        ListenerGraph(model, fields),
        (features, lengths),
        folder / "encoder.onnx",
        ["features", "lengths"],
        ["ctc_log_probs", "ctc_lengths", *fields],
        {"features": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}},
    )
    return export_step(model, state, fields, folder)


EXPORTERS: dict[str, Callable[[TrainedModel, Path], dict[str, Any]]] = {
    "speech": export_recognizer,
    "classification": export_classifier,
    "summarization": export_summarizer,
    "translation": export_translator,
}
