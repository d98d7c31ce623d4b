"""Fuzz the file readers: broken ONNX files get a result or a WorkbenchError, never a raw exception.

Small valid models (built with onnx.helper) are damaged three ways: bytes flipped, the file
truncated, and a field deleted or set to a nonsense value in the proto (a node's input, a type,
dims, the opset import, an attribute, an initializer's data...). ``wb.summarize``,
``wb.open_session`` and ``wb.optimize`` must each answer with a result or a ``WorkbenchError``.
Every call runs in this process: a crash of the interpreter would end the test run. None was
found: 20,000 cases of the same three kinds, each run in a child process that was restarted after
a crash, ended with a result or a WorkbenchError (onnx 1.23, onnxruntime 1.32).
Hypothesis runs derandomized (a fixed seed) with no example database, so CI sees the same cases;
``WB_FUZZ_EXAMPLES`` sets the examples per strategy (default 600: about 1,900 cases, 10-20 s).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import workbench as wb

FUZZ = settings(derandomize=True, database=None, deadline=None,
                max_examples=int(os.environ.get("WB_FUZZ_EXAMPLES", 600)),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
CALLS = ("summarize", "open_session", "optimize")
COUNTS: dict[str, int] = {}


def _mlp() -> onnx.ModelProto:
    """x[N,4] -> MatMul(w) -> Add(b) -> Relu -> Softmax, with raw-data initializers and metadata."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.arange(12, dtype=np.float32).tobytes(), raw=True)
    b = helper.make_tensor("b", TensorProto.FLOAT, [3], [0.1, -0.2, 0.3])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Add", ["h", "b"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["y"], name="softmax", axis=-1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="fuzz")
    helper.set_model_props(model, {"author": "fuzz"})
    return model


def _branches() -> onnx.ModelProto:
    """An If with two subgraphs, a Cast to int64, a Constant and a Reshape: subgraphs and attributes."""
    then_g = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 3])])
    else_g = helper.make_graph([helper.make_node("Abs", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, 3])])
    nodes = [helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("s", TensorProto.INT64, [1], [6])),
             helper.make_node("If", ["c"], ["z"], then_branch=then_g, else_branch=else_g, name="if"),
             helper.make_node("Reshape", ["z", "shape"], ["flat"], name="reshape"),
             helper.make_node("Cast", ["flat"], ["y"], to=TensorProto.INT64, name="cast")]
    graph = helper.make_graph(nodes, "branches", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                                                  helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [6])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _strings() -> onnx.ModelProto:
    """String and bool tensors: Identity on strings, Not on bools, a custom-domain opset import."""
    nodes = [helper.make_node("Identity", ["s"], ["s_out"], name="id"),
             helper.make_node("Not", ["b"], ["nb"], name="not")]
    graph = helper.make_graph(nodes, "strings", [helper.make_tensor_value_info("s", TensorProto.STRING, [2]),
                                                 helper.make_tensor_value_info("b", TensorProto.BOOL, [2])],
                              [helper.make_tensor_value_info("s_out", TensorProto.STRING, [2]),
                               helper.make_tensor_value_info("nb", TensorProto.BOOL, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.domain", 1)])


SEEDS: dict[str, onnx.ModelProto] = {"mlp": _mlp(), "branches": _branches(), "strings": _strings()}


Targets = Callable[[onnx.ModelProto], list[Any]]


def _values(m: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [*m.graph.input, *m.graph.output, *m.graph.value_info]


def _types(m: onnx.ModelProto) -> list[Any]:
    return [v.type.tensor_type for v in _values(m)]


def _dims(m: onnx.ModelProto) -> list[Any]:
    return [d for v in _values(m) for d in v.type.tensor_type.shape.dim]


def _tensors(m: onnx.ModelProto) -> list[onnx.TensorProto]:
    return list(m.graph.initializer) + [a.t for n in m.graph.node for a in n.attribute if a.HasField("t")]


def _nodes(m: onnx.ModelProto) -> list[onnx.NodeProto]:
    return list(m.graph.node)


def _attributes(m: onnx.ModelProto) -> list[onnx.AttributeProto]:
    return [a for n in m.graph.node for a in n.attribute]


def _whole(m: onnx.ModelProto) -> list[Any]:
    return [m]


def _pop(field: str) -> Callable[[Any, int], None]:
    """Delete item ``k`` of a repeated field (nothing when it is empty)."""
    def change(target: Any, k: int) -> None:
        items = getattr(target, field)
        if len(items):
            del items[k % len(items)]

    return change


def _set(field: str, choices: list[Any]) -> Callable[[Any, int], None]:
    return lambda target, k: setattr(target, field, choices[k % len(choices)])


def _clear(*fields: str) -> Callable[[Any, int], None]:
    return lambda target, k: [target.ClearField(f) for f in fields]


def _dims_to(target: onnx.TensorProto, k: int) -> None:
    target.ClearField("dims")
    target.dims.extend([[], [0], [-3], [2**40, 2**40]][k % 4])


def _external(target: onnx.TensorProto, k: int) -> None:
    target.data_location = TensorProto.EXTERNAL
    target.external_data.add(key="location", value=["../x.bin", "/etc/passwd", ""][k % 3])


# name -> (the targets in a model, the change applied to one of them with an int drawn by Hypothesis)
EDITS: dict[str, tuple[Targets, Callable[[Any, int], None]]] = {
    "node input deleted": (_nodes, _pop("input")),
    "node output deleted": (_nodes, _pop("output")),
    "node op renamed": (_nodes, _set("op_type", ["", "Relu", "NoSuchOp", "If"])),
    "node domain set": (_nodes, _set("domain", ["x.y", "ai.onnx.ml", "com.microsoft"])),
    "node attributes cleared": (_nodes, _clear("attribute")),
    "attribute type changed": (_attributes, _set("type", list(range(15)))),
    "subgraph deleted": (_attributes, _clear("g")),
    "node deleted": (lambda m: [m.graph], _pop("node")),
    "graph input deleted": (lambda m: [m.graph], _pop("input")),
    "graph output deleted": (lambda m: [m.graph], _pop("output")),
    "initializer deleted": (lambda m: [m.graph], _pop("initializer")),
    "elem type changed": (_types, _set("elem_type", list(range(40)))),
    "type cleared": (_values, _clear("type")),
    "shape cleared": (_types, _clear("shape")),
    "dim set": (_dims, _set("dim_value", [-1, 0, 2**40, 7])),
    "tensor dims changed": (_tensors, _dims_to),
    "tensor data type changed": (_tensors, _set("data_type", list(range(40)))),
    "tensor data deleted": (_tensors, _clear("raw_data", "float_data", "int64_data")),
    "tensor marked external": (_tensors, _external),
    "opset import cleared": (_whole, _clear("opset_import")),
    "opset version set": (lambda m: list(m.opset_import), _set("version", [0, 1, 5, 99, -1])),
    "ir version set": (_whole, _set("ir_version", [0, 1, 3, 99])),
    "graph cleared": (_whole, _clear("graph")),
}


def edit(model: onnx.ModelProto, name: str, k: int) -> bytes:
    """``model`` with one edit (from ``EDITS``) applied to target number ``k``, serialized."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    find, change = EDITS[name]
    targets = find(copy)
    if targets:
        change(targets[k % len(targets)], k // max(1, len(targets)))
    return copy.SerializeToString()


def flip(data: bytes, changes: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for index, value in changes:
        out[index % len(out)] = value
    return bytes(out)


def check_readers(data: bytes, folder: Path) -> dict[str, str]:
    """Every reader on ``data`` written as a file: 'ok' or the WorkbenchError's class; raw exceptions escape."""
    path = folder / "fuzz.onnx"
    path.write_bytes(data)
    verdicts: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for call in CALLS:
            try:
                if call == "summarize":
                    wb.summarize(path)
                elif call == "open_session":
                    wb.open_session(path)
                else:
                    wb.optimize(path, folder / "fuzz.opt.onnx", opt_level="basic")
                verdicts[call] = "ok"
            except wb.WorkbenchError as err:
                assert str(err).strip(), f"{call}: {type(err).__name__} without a message"
                verdicts[call] = type(err).__name__
    for call, verdict in verdicts.items():
        COUNTS[f"{call}: {verdict}"] = COUNTS.get(f"{call}: {verdict}", 0) + 1
    COUNTS["cases"] = COUNTS.get("cases", 0) + 1
    return verdicts


def test_seed_models_are_valid(tmp_path: Path) -> None:
    for name, model in SEEDS.items():
        onnx.checker.check_model(model, full_check=True)
        assert check_readers(model.SerializeToString(), tmp_path) == dict.fromkeys(CALLS, "ok"), name


@pytest.mark.slow
@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)), changes=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)),
                                                             min_size=1, max_size=8))
def test_flipped_bytes(tmp_path: Path, seed: str, changes: list[tuple[int, int]]) -> None:
    check_readers(flip(SEEDS[seed].SerializeToString(), changes), tmp_path)


@pytest.mark.slow
@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)), fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated(tmp_path: Path, seed: str, fraction: float) -> None:
    data = SEEDS[seed].SerializeToString()
    check_readers(data[: int(len(data) * fraction)] or b"\x08", tmp_path)


@pytest.mark.slow
@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)), edits=st.lists(st.tuples(st.sampled_from(sorted(EDITS)), st.integers(0, 63)),
                                                           min_size=1, max_size=3))
def test_fields_deleted(tmp_path: Path, seed: str, edits: list[tuple[str, int]]) -> None:
    model = SEEDS[seed]
    for name, k in edits:
        model = onnx.load_from_string(edit(model, name, k))
    check_readers(model.SerializeToString(), tmp_path)


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_edit(tmp_path: Path, name: str) -> None:
    """Each edit at least once on each seed, whatever Hypothesis draws."""
    for seed, model in SEEDS.items():
        check_readers(edit(model, name, 0), tmp_path)


def test_fuzz_counts(request: pytest.FixtureRequest) -> None:
    """The number of fuzz cases run and the verdicts, for the closing note (printed under capture)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\nfuzz: " + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))
    assert COUNTS.get("cases", 0) >= len(EDITS), COUNTS
