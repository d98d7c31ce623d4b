from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import workbench as wb


def test_summary_of_an_export(export_zoo):
    summary = wb.summarize(export_zoo("bert_like").out)
    assert summary.checker_ok and summary.checker_message == ""
    assert summary.ir_version >= 8 and summary.opsets[""] == 18
    assert "pytorch" in summary.producer
    assert [i.name for i in summary.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert summary.inputs[0].dtype == "int64" and summary.inputs[0].dims == ("batch", "seq")
    assert [o.name for o in summary.outputs] == ["last_hidden_state", "pooler_output"]
    assert summary.node_count == sum(summary.ops.values()) > 0
    assert summary.ops["MatMul"] > 0
    model = wb.zoo.get("bert_like", smoke=True).model
    n_params = sum(p.numel() for p in model.parameters())
    # the exporter may fold or add small constants; the weights dominate
    assert abs(summary.parameter_count - n_params) / n_params < 0.02
    assert summary.parameter_bytes["float32"] == 4 * summary.parameter_count_by_dtype["float32"]
    assert summary.intermediate, "shape inference should give intermediate shapes"
    assert any(info.symbolic for info in summary.intermediate.values())
    assert "ModelSummary" in repr(summary) and "<table" in summary._repr_html_()
    assert list(summary.to_pandas().columns) == ["op_type", "count"]


def test_summary_of_a_model_proto(export_zoo):
    proto = onnx.load(str(export_zoo("mlp").out))
    summary = wb.summarize(proto)
    assert summary.path is None and summary.checker_ok and summary.ops["Gemm"] + summary.ops["MatMul"] == 2


def _invalid_model() -> onnx.ModelProto:
    node = helper.make_node("Relu", ["missing"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_checker_failure_is_reported_not_raised(tmp_path):
    path = tmp_path / "invalid.onnx"
    onnx.save(_invalid_model(), str(path))
    summary = wb.summarize(path)
    assert summary.checker_ok is False and not summary
    assert "missing" in summary.checker_message


def test_custom_domain_ops_are_counted():
    node = helper.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    summary = wb.summarize(model, check=False)
    assert summary.ops == {"com.microsoft::FastGelu": 1}
    assert summary.custom_domains == ["com.microsoft"] and summary.checker_ok is None


def test_external_data_is_not_loaded(export_zoo, tmp_path):
    proto = onnx.load(str(export_zoo("mlp").out))
    path = tmp_path / "ext.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    summary = wb.summarize(path)
    assert summary.external_data == {"weights.bin": (tmp_path / "weights.bin").stat().st_size}
    assert summary.parameter_count == wb.summarize(proto).parameter_count
    assert summary.checker_ok


def test_a_model_over_2gb_is_summarized_without_loading_its_weights(tmp_path):
    """A 2.8 GB weight in a sparse external file: summarize reads only the graph."""
    n = 700_000_000
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[n])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in {"location": "big.bin", "offset": "0", "length": str(4 * n)}.items():
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Add", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "big.onnx"
    onnx.save_model(model, str(path))
    with open(tmp_path / "big.bin", "wb") as fh:  # sparse: takes no disk space
        fh.truncate(4 * n)
    summary = wb.summarize(path)
    assert summary.parameter_count == n and summary.total_parameter_bytes == 4 * n
    assert summary.external_data == {"big.bin": 4 * n}
    assert summary.file_bytes < 1000


@pytest.mark.parametrize("content,match", [
    (None, "No ONNX file at"),
    (b"", "is empty"),
    (b"not an onnx model at all" * 3, "could not be parsed|holds no graph"),
])
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(wb.ModelFileError, match=match):
        wb.summarize(path)


def test_truncated_file(export_zoo, tmp_path):
    data = export_zoo("mlp").out.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(wb.ModelFileError, match="truncated, corrupt or not an ONNX file"):
        wb.summarize(path)


def test_directory_and_wrong_type(tmp_path):
    with pytest.raises(wb.ModelFileError, match="is a directory"):
        wb.summarize(tmp_path)
    with pytest.raises(wb.ModelFileError, match="Expected a path to an .onnx file, received int"):
        wb.summarize(3)


def test_one_op_histogram_counts_subgraphs_and_prefixes_other_domains(tmp_path):
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    other = helper.make_graph([helper.make_node("FastGelu", ["x"], ["e"], domain="com.microsoft")], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])])
    nodes = [helper.make_node("Identity", ["c"], ["c2"], domain="ai.onnx"),
             helper.make_node("If", ["c2"], ["y"], then_branch=then, else_branch=other)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                                           helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    expected = {"Identity": 1, "If": 1, "Relu": 1, "com.microsoft::FastGelu": 1}
    assert wb.op_histogram(model) == expected
    onnx.save(model, str(tmp_path / "if.onnx"))
    assert wb.op_histogram(tmp_path / "if.onnx") == expected == wb.summarize(model, check=False).ops


# ---------------------------------------------------------------- parameter counts (issue 10, broken #3)


def _distinct_parameters(model: torch.nn.Module) -> int:
    """The model's parameters with more than one element, identical tensors counted once."""
    seen = {(tuple(p.shape), p.detach().cpu().numpy().tobytes()): p.numel() for p in model.parameters() if p.numel() > 1}
    return sum(seen.values())


@pytest.mark.slow
def test_parameter_count_is_equal_across_exporters(export_zoo):
    """626,203 (dynamo) against 345,610 (TorchScript) before: the count depended on how each exporter
    shares the identical weights of the encoder's deep-copied layers (TorchScript: one initializer
    and Identity nodes; dynamo: shared initializers, a folded transposed copy per layer, zero biases
    dropped) and dynamo's int64 shape constants were counted. Now each distinct tensor counts once."""
    model = wb.zoo.get("text_classifier", smoke=True).model
    dynamo = wb.summarize(export_zoo("text_classifier", "dynamo").out)
    torchscript = wb.summarize(export_zoo("text_classifier", "torchscript").out)
    assert dynamo.parameter_count == torchscript.parameter_count == _distinct_parameters(model)
    assert dynamo.parameter_count_by_dtype == torchscript.parameter_count_by_dtype == {"float32": dynamo.parameter_count}
    assert dynamo.parameters_in_initializers == dynamo.parameter_count
    assert dynamo.repeated_parameters > 0  # dynamo stores the repeated layer's folded weights again
    assert "counted once" in repr(dynamo) and "in initializers" in repr(torchscript)


@pytest.mark.slow
def test_parameter_count_equals_torch_when_the_weights_differ(tmp_path):
    """With every weight different (a trained model), both exporters count sum(p.numel())."""
    case = wb.zoo.get("text_classifier", smoke=True)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in case.model.parameters():
            p.copy_(torch.randn_like(p))
    expected = sum(p.numel() for p in case.model.parameters())
    for spec in (case.spec, case.spec.replace(exporter="torchscript", opset=17)):
        out = wb.export(case.model, case.example_inputs, tmp_path / f"{spec.exporter}.onnx", spec=spec).out
        summary = wb.summarize(out)
        assert summary.parameter_count == expected, spec.exporter
        assert summary.repeated_parameters == 0


def _as_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its initializers moved into Constant nodes (as some exporters write weights)."""
    moved = onnx.ModelProto()
    moved.CopyFrom(model)
    constants = [helper.make_node("Constant", [], [t.name], value=t) for t in moved.graph.initializer]
    del moved.graph.initializer[:]
    nodes = constants + list(moved.graph.node)
    del moved.graph.node[:]
    moved.graph.node.extend(nodes)
    return moved


def test_weights_in_constant_nodes_are_counted(export_zoo):
    proto = onnx.load(str(export_zoo("mlp", "torchscript").out))
    as_initializers, as_constants = wb.summarize(proto), wb.summarize(_as_constants(proto), check=False)
    assert as_constants.parameter_count == as_initializers.parameter_count == 676
    assert as_constants.parameter_locations == {"constants": 676}
    assert as_initializers.parameter_locations == {"initializers": 676}
    assert as_constants.parameters_in_constants == 676 and as_constants.parameters_in_initializers == 0


def _rule_model() -> onnx.ModelProto:
    """Parameters in every place the graph holds tensors, and tensors that are not parameters."""
    f = TensorProto.FLOAT
    weight = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    twin = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w_copy")  # same values
    shape = numpy_helper.from_array(np.array([3, 2], np.int64), "shape")  # a Reshape shape: not a parameter
    scale = numpy_helper.from_array(np.array(0.5, np.float32), "scale")  # a scalar: not a parameter
    quantized = numpy_helper.from_array(np.arange(8, dtype=np.int8), "q")  # int8 weights: parameters
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "sv"),
                                       numpy_helper.from_array(np.array([0, 5], np.int64), "si"), [10])
    then = helper.make_graph([helper.make_node("Constant", [], ["t"], value_floats=[1.0, 2.0, 3.0, 4.0])], "then", [],
                             [helper.make_tensor_value_info("t", f, [4])],
                             initializer=[numpy_helper.from_array(np.ones(5, np.float32), "sub_w")])
    other = helper.make_graph([helper.make_node("Constant", [], ["e"], value=numpy_helper.from_array(
        np.zeros(4, np.float32), "ev"))], "else", [], [helper.make_tensor_value_info("e", f, [4])])
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones((2, 2), np.float16), "cv")),
             helper.make_node("Constant", [], ["sp"], sparse_value=sparse),
             helper.make_node("Constant", [], ["axes"], value_ints=[0, 1]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", f, [4])],
                              initializer=[weight, twin, shape, scale, quantized])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    body = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.ones(3, np.float32), "kv"))
    model.functions.append(helper.make_function("local", "F", [], ["k"], [body], [helper.make_opsetid("", 18)]))
    return model


def test_parameter_rule_where_and_what():
    summary = wb.summarize(_rule_model(), check=False)
    # initializers: w (6; its twin counted once), q (8 int8); constants: 2x2 fp16 (4), sparse dense size 10;
    # subgraphs: sub_w (5), value_floats (4), zeros (4); functions: 3. Not: shape, scale, value_ints.
    assert summary.parameter_locations == {"initializers": 14, "constants": 14, "subgraphs": 13, "functions": 3}
    assert summary.parameter_count == 44 and summary.repeated_parameters == 6
    assert summary.parameter_count_by_dtype == {"float32": 32, "int8": 8, "float16": 4}
    assert summary.parameter_bytes == {"float32": 128, "int8": 8, "float16": 8}
    assert summary.parameters_in_subgraphs == 16
    text, html = repr(summary), summary._repr_html_()
    for where in ("14 in initializers", "14 in constants", "13 in subgraphs", "3 in functions", "6 more stored"):
        assert where in text and where in html
