from __future__ import annotations

import workbench as wb
from workbench.core.placement import parse_profile


def test_every_node_has_a_provider(export_zoo, tc_smoke):
    path = export_zoo("text_classifier").out
    result = wb.placement(path, tc_smoke.example_inputs, config=wb.SessionConfig(opt_level="disable"))
    assert result.nodes and result.by_provider == {"CPUExecutionProvider": len(result.nodes)}
    assert result.memcpy_count == 0 and result.fell_back == []
    # with optimizations off, every graph node runs (constant nodes are folded into initializers)
    assert len(result.nodes) >= wb.summarize(path).node_count * 0.5
    assert "Placement(" in repr(result) and len(result.to_pandas()) == len(result.nodes)


def test_parse_profile_reads_node_events_and_memcpy():
    events = [
        {"cat": "Session", "name": "model_run", "args": {}},
        {"cat": "Node", "name": "MatMul_1_kernel_time", "args": {"op_name": "MatMul", "provider": "CUDAExecutionProvider"}},
        {"cat": "Node", "name": "MatMul_1_fence_before", "args": {"op_name": "MatMul", "provider": "CUDAExecutionProvider"}},
        {"cat": "Node", "name": "Memcpy_token_2_kernel_time", "args": {"op_name": "MemcpyToHost", "provider": "CUDAExecutionProvider"}},
        {"cat": "Node", "name": "Shape_3_kernel_time", "args": {"op_name": "Shape", "provider": "CPUExecutionProvider"}},
    ]
    nodes = parse_profile(events)
    assert [n.node for n in nodes] == ["MatMul_1", "Memcpy_token_2", "Shape_3"]
    assert [n.provider for n in nodes] == ["CUDAExecutionProvider"] * 2 + ["CPUExecutionProvider"]
