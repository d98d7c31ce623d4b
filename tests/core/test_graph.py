from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

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
