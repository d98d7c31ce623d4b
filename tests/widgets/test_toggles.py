"""SessionToggles: controls <-> SessionConfig."""

from __future__ import annotations

import onnxruntime as ort

import workbench as wb
from workbench.widgets import SessionToggles


def test_providers_come_from_onnxruntime() -> None:
    toggles = SessionToggles()
    assert list(toggles.provider_boxes) == ort.get_available_providers()
    cpu = toggles.provider_boxes["CPUExecutionProvider"]
    assert cpu.value and cpu.disabled  # always there as the fallback
    assert toggles.config == wb.SessionConfig()


def test_controls_make_the_config() -> None:
    toggles = SessionToggles()
    seen: list[wb.SessionConfig] = []
    toggles.observe(lambda change: seen.append(change["new"]), names="config")
    toggles.opt_level.value = "basic"
    toggles.intra_op_threads.value = 2
    toggles.inter_op_threads.value = 1
    toggles.execution_mode.value = "parallel"
    assert toggles.config == wb.SessionConfig(opt_level="basic", intra_op_threads=2, inter_op_threads=1,
                                             execution_mode="parallel")
    assert [c.opt_level for c in seen] == ["basic"] * 4
    assert toggles.config.label() in toggles.status.value and toggles.state == "done"


def test_config_moves_the_controls() -> None:
    toggles = SessionToggles(providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    toggles.config = wb.SessionConfig(providers=("CUDAExecutionProvider",), opt_level="disable", intra_op_threads=3)
    assert toggles.opt_level.value == "disable" and toggles.intra_op_threads.value == 3
    assert toggles.provider_boxes["CUDAExecutionProvider"].value
    toggles.provider_boxes["CUDAExecutionProvider"].value = False
    assert toggles.config.providers == ("CPUExecutionProvider",)


def test_a_provider_missing_here_is_said() -> None:
    toggles = SessionToggles(wb.SessionConfig(providers=("TensorrtExecutionProvider",)),
                             providers=["CPUExecutionProvider"])
    assert "Not available in this onnxruntime build: TensorrtExecutionProvider" in toggles.status.value
