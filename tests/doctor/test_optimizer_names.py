"""The bisection's optimizer names against the installed ONNX Runtime.

ONNX Runtime ignores a name in ``disabled_optimizers`` it does not know, so a stale name in
``workbench.doctor.bisect`` would make the bisection try nothing and say nothing. Two checks:

* graph transformers: ONNX Runtime's verbose log names every transformer it applies, per level;
  the table must list exactly those (and disabling them by name must remove them all);
* rewrite rules run inside ``LevelN_RuleBasedTransformer``, which the log reports as one; each rule
  gets a small graph it rewrites, and the rule-based transformer must modify it unless that rule
  is disabled by name.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from workbench.doctor.bisect import REWRITE_RULES, TRANSFORMERS

#: ONNX Runtime's levels as the workbench names them ("all" runs ONNX Runtime's levels 3 and 4).
LEVEL_NAMES = {1: "basic", 2: "extended", 3: "all", 4: "all"}
#: Config entries that switch on the opt-in optimizers, so that the log names them too.
OPT_INS = {"optimization.enable_gelu_approximation": "1", "optimization.enable_cast_chain_elimination": "1",
           "session.x64quantprecision": "1"}
#: Transformers ONNX Runtime registers only on some CPUs (NCHWc blocks, AVX2, int8 QDQ support).
PLATFORM_DEPENDENT = {"NchwcTransformer", "NhwcTransformer", "Avx2WeightS8ToU8Transformer", "QDQS8ToU8Transformer"}


def _session_log(model: onnx.ModelProto, capfd: pytest.CaptureFixture[str], disabled: Sequence[str] = ()) -> str:
    """What ONNX Runtime logs (verbose) while building a CPU session for ``model``."""
    options = ort.SessionOptions()
    options.log_severity_level = 0
    for key, value in OPT_INS.items():
        options.add_session_config_entry(key, value)
    capfd.readouterr()
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=list(disabled))
    return capfd.readouterr().err


def _applied(log: str) -> dict[str, set[str]]:
    """Level name -> the graph transformers the log says were applied (rule-based ones left out)."""
    out: dict[str, set[str]] = {name: set() for name in LEVEL_NAMES.values()}
    level = 0
    for line in log.splitlines():
        found = re.search(r"transformer\(s\) for level (\d+)|registered for level (\d+)", line)
        if found:
            level = int(found.group(1) or found.group(2))
            continue
        found = re.search(r"Applying graph transformer (\w+) on step 1\.", line)
        if found and level in LEVEL_NAMES and not found.group(1).endswith("_RuleBasedTransformer"):
            out[LEVEL_NAMES[level]].add(found.group(1))
    return out


def _vi(name: str, shape: Sequence[int] | None, dtype: int = T.FLOAT) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, dtype, shape)


def _init(name: str, value: Any, dtype: Any = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _graph(nodes: list[onnx.NodeProto], inits: Sequence[onnx.TensorProto] = (), *, inputs: Sequence[Any] = (),
           out_type: int = T.FLOAT, opset: int = 17, ml: bool = False) -> onnx.ModelProto:
    """``x0 [2, 3] -> Sigmoid -> x`` then ``nodes`` (reading ``x`` and ``inputs``) up to the output ``y``."""
    body = [h.make_node("Sigmoid", ["x0"], ["x"]), *nodes]
    graph = h.make_graph(body, "g", [_vi("x0", [2, 3]), *inputs], [_vi("y", None, out_type)], list(inits))
    opsets = [h.make_opsetid("", opset)] + ([h.make_opsetid("ai.onnx.ml", 4)] if ml else [])
    return h.make_model(graph, opset_imports=opsets)


def _node(op: str, inputs: list[str], output: str = "y", **attrs: Any) -> onnx.NodeProto:
    return h.make_node(op, inputs, [output], **attrs)


def _conv_then(op: str, *extra: str, inits: Sequence[onnx.TensorProto]) -> onnx.ModelProto:
    """``image -> Conv(1x1) -> op(conv, *extra)``."""
    nodes = [_node("Conv", ["image", "w"], "c"), _node(op, ["c", *extra])]
    return _graph(nodes, [_init("w", np.ones((3, 2, 1, 1))), *inits], inputs=[_vi("image", [1, 2, 4, 4])])


def _bn(size: int) -> list[onnx.TensorProto]:
    return [_init(n, np.ones(size)) for n in ("s", "bb", "m", "v")]


def _quantize(first: onnx.NodeProto, *inits: onnx.TensorProto) -> onnx.ModelProto:
    nodes = [first, _node("QuantizeLinear", ["c", "sc", "zp"])]
    return _graph(nodes, [*inits, _init("sc", 0.1), _init("zp", 0, np.uint8)], out_type=T.UINT8)


def _rule_graphs() -> dict[str, onnx.ModelProto]:
    """Rule name -> a small graph that rule rewrites (and no other rule does)."""
    relu = _node("Relu", ["t"])
    return {
        "EliminateIdentity": _graph([_node("Identity", ["x"], "t"), relu]),
        "EliminateSlice": _graph([_node("Slice", ["x", "s", "e", "a"], "t"), relu],
                                 [_init("s", [0], np.int64), _init("e", [np.iinfo(np.int64).max], np.int64),
                                  _init("a", [0], np.int64)]),
        "UnsqueezeElimination": _graph([_node("Unsqueeze", ["c"], "u", axes=[0]), _node("Add", ["x", "u"])],
                                       [_init("c", np.ones(3))], opset=11),
        "EliminateDropout": _graph([_node("Dropout", ["x"], "t"), relu]),
        "ExpandElimination": _graph([_node("Expand", ["x", "sh"], "t"), relu], [_init("sh", [2, 3], np.int64)]),
        "CastElimination": _graph([_node("Cast", ["x"], "t", to=T.FLOAT), relu]),
        "CastChainElimination": _graph([_node("Cast", ["x"], "a", to=T.DOUBLE), _node("Cast", ["a"], "b", to=T.FLOAT16),
                                        _node("Cast", ["b"], "t", to=T.FLOAT), relu]),
        "PreShapeNodeElimination": _graph([_node("Cast", ["x"], "t", to=T.DOUBLE), _node("Shape", ["t"])],
                                          out_type=T.INT64),
        "NoopElimination": _graph([_node("Add", ["x", "z"], "t"), relu], [_init("z", [0.0])]),
        "DivMulFusion": _graph([_node("Div", ["one", "x"], "d"), _node("Mul", ["d", "x1"])], [_init("one", [1.0])],
                               inputs=[_vi("x1", [2, 3])]),
        "FuseReluClip": _graph([_node("Relu", ["x"], "r"), _node("Clip", ["r", "lo", "hi"])],
                               [_init("lo", -1.0), _init("hi", 6.0)]),
        "GemmSumFusion": _graph([_node("Gemm", ["x", "w"], "g"), _node("Sum", ["g", "b"])],
                                [_init("w", np.ones((3, 4)))], inputs=[_vi("b", [4])]),
        "GemmTransposeFusion": _graph([_node("Transpose", ["x"], "t", perm=[1, 0]), _node("Gemm", ["t", "w"])],
                                      [_init("w", np.ones((2, 4)))]),
        "NotWhereFusion": _graph([_node("Not", ["cond"], "n"), _node("Where", ["n", "x", "x1"])],
                                 inputs=[_vi("cond", [2, 3], T.BOOL), _vi("x1", [2, 3])]),
        "ConvAddFusion": _conv_then("Add", "b", inits=[_init("b", np.ones((3, 1, 1)))]),
        "ConvMulFusion": _conv_then("Mul", "b", inits=[_init("b", np.ones((3, 1, 1)))]),
        "ConvBNFusion": _conv_then("BatchNormalization", "s", "bb", "m", "v", inits=_bn(3)),
        "Pad_Fusion": _graph([_node("Pad", ["image", "p"], "t"), _node("Conv", ["t", "w"])],
                             [_init("p", [0, 0, 1, 1, 0, 0, 1, 1], np.int64), _init("w", np.ones((3, 2, 1, 1)))],
                             inputs=[_vi("image", [1, 2, 4, 4])]),
        "MatMul_BatchNormalization_Fusion": _graph([_node("MatMul", ["x", "w"], "c"),
                                                    _node("BatchNormalization", ["c", "s", "bb", "m", "v"])],
                                                   [_init("w", np.ones((3, 4))), *_bn(4)]),
        "LabelEncoderFusion": _graph([_node("Cast", ["x"], "i", to=T.INT64),
                                      _node("LabelEncoder", ["i"], "t", domain="ai.onnx.ml", keys_int64s=[1, 2],
                                            values_int64s=[2, 3], default_int64=0),
                                      _node("LabelEncoder", ["t"], domain="ai.onnx.ml", keys_int64s=[2, 3],
                                            values_int64s=[5, 6], default_int64=0)], out_type=T.INT64, ml=True),
        "ClipQuantRewrite": _quantize(_node("Clip", ["x", "lo", "hi"], "c"), _init("lo", 0.0), _init("hi", 100.0)),
        "ReluQuantRewrite": _quantize(_node("Relu", ["x"], "c")),
    }


@pytest.fixture(scope="module")
def rule_graphs() -> dict[str, onnx.ModelProto]:
    return _rule_graphs()


def test_transformer_names_and_levels_match_onnx_runtime(rule_graphs, capfd):
    applied = _applied(_session_log(rule_graphs["EliminateIdentity"], capfd))
    assert applied["basic"] and applied["extended"], "ONNX Runtime's verbose log no longer names its transformers"
    for level, names in TRANSFORMERS.items():
        missing = applied[level] - set(names)
        stale = set(names) - applied[level] - PLATFORM_DEPENDENT
        assert not missing, f"ONNX Runtime {ort.__version__} applies {sorted(missing)} at {level!r}; add them"
        assert not stale, f"ONNX Runtime {ort.__version__} has no {sorted(stale)} at {level!r}; remove or rename them"


def test_every_transformer_is_disabled_by_its_name(rule_graphs, capfd):
    every = [name for names in TRANSFORMERS.values() for name in names]
    applied = _applied(_session_log(rule_graphs["EliminateIdentity"], capfd, every))
    assert applied == {level: set() for level in applied}


def test_every_rewrite_rule_is_known_and_disabled_by_its_name(rule_graphs, capfd):
    assert set(rule_graphs) == {name for names in REWRITE_RULES.values() for name in names}
    # a rule registered at two levels is checked at the first (the second finds nothing left to rewrite)
    first_level = {name: n for n, level in ((2, "extended"), (1, "basic")) for name in REWRITE_RULES[level]}
    for name, number in first_level.items():
        rewrote = f"GraphTransformer Level{number}_RuleBasedTransformer modified: 1"
        assert rewrote in _session_log(rule_graphs[name], capfd), f"{name} no longer rewrites its graph"
        assert rewrote not in _session_log(rule_graphs[name], capfd, [name]), \
            f"disabling {name!r} does not stop the rewrite: ONNX Runtime {ort.__version__} calls it otherwise"
    assert not REWRITE_RULES["all"]
