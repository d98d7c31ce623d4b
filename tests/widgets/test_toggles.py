"""SessionToggles: controls <-> SessionConfig, and only the providers that can run here offered."""

from __future__ import annotations

import ipywidgets as widgets
import onnxruntime as ort

import workbench as wb
from workbench.widgets import SessionToggles
from workbench.widgets.toggles import NOT_LOCAL


def test_providers_come_from_onnxruntime_and_those_that_cannot_run_here_are_greyed() -> None:
    toggles = SessionToggles()
    available = ort.get_available_providers()
    assert list(toggles.provider_boxes)[: len(available)] == available
    cpu = toggles.provider_boxes["CPUExecutionProvider"]
    assert cpu.value and cpu.disabled and "fallback" in cpu.tooltip  # always there as the fallback
    assert toggles.config == wb.SessionConfig()
    for name, box in toggles.provider_boxes.items():
        usable = name in available and name not in NOT_LOCAL
        assert box.disabled == (not usable or name == "CPUExecutionProvider"), name
        if not usable:  # greyed, and the reason on hover and in the notes under the boxes
            assert toggles.unusable[name] and toggles.unusable[name] in box.tooltip
            assert box.description in toggles.provider_notes.value


def test_a_cpu_build_greys_azure_and_cuda_with_the_reason() -> None:
    toggles = SessionToggles(providers=["AzureExecutionProvider", "CPUExecutionProvider"])
    assert list(toggles.provider_boxes) == ["AzureExecutionProvider", "CPUExecutionProvider", "CUDAExecutionProvider"]
    azure, cuda = toggles.provider_boxes["AzureExecutionProvider"], toggles.provider_boxes["CUDAExecutionProvider"]
    assert azure.disabled and not azure.value and "Azure" in azure.tooltip and "does not run this model here" in azure.tooltip
    assert cuda.disabled and "onnxruntime-gpu" in cuda.tooltip
    assert "onnxruntime-gpu" in toggles.provider_notes.value and "Azure" in toggles.provider_notes.value
    gpu = SessionToggles(providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert not gpu.provider_boxes["CUDAExecutionProvider"].disabled and "CUDA" not in gpu.provider_notes.value


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
    toggles.config = wb.SessionConfig(providers=("CUDAExecutionProvider",), opt_level="disable", intra_op_threads=3,
                                      inter_op_threads=2, execution_mode="parallel")
    assert toggles.opt_level.value == "disable" and toggles.intra_op_threads.value == 3
    assert toggles.inter_op_threads.value == 2 and toggles.execution_mode.value == "parallel"
    assert toggles.provider_boxes["CUDAExecutionProvider"].value
    toggles.provider_boxes["CUDAExecutionProvider"].value = False
    assert toggles.config.providers == ("CPUExecutionProvider",)
    toggles.provider_boxes["CUDAExecutionProvider"].value = True
    assert toggles.config.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")


def test_a_provider_that_cannot_run_here_is_said_and_kept() -> None:
    toggles = SessionToggles(wb.SessionConfig(providers=("TensorrtExecutionProvider",)),
                             providers=["CPUExecutionProvider"])
    assert "Cannot run here: TensorrtExecutionProvider" in toggles.status.value
    toggles.opt_level.value = "basic"  # another control moves: the config keeps what it asked for
    assert toggles.config.providers == ("TensorrtExecutionProvider", "CPUExecutionProvider")
    assert toggles.config.opt_level == "basic"


def test_no_button_label_is_cut_off() -> None:
    """ToggleButtons cut a label that does not fit their width ("extend\u2026"): ~8 px a character + padding."""
    toggles = SessionToggles()
    for buttons in (toggles.opt_level, toggles.execution_mode):
        width = int(buttons.style.button_width.removesuffix("px"))
        assert all(8 * len(label) + 24 <= width for label in buttons.options), (buttons.options, width)


def test_thread_labels_stay_whole_beside_their_fields() -> None:
    """At 1000 px the "intra-op" label was shrunk under its input: each label and field are one
    unit that a narrow row wraps whole, never shrinks."""
    toggles = SessionToggles()
    pairs = [box for box in _walk(toggles) if isinstance(box, widgets.HBox)
             and any(child is toggles.intra_op_threads or child is toggles.inter_op_threads for child in box.children)]
    assert len(pairs) == 2
    for pair in pairs:
        label, field = pair.children
        assert pair.layout.flex == "0 0 auto" and label.layout.flex == "0 0 auto" and field.layout.flex == "0 0 auto"
        assert "white-space: nowrap" in label.value
    row = next(box for box in _walk(toggles) if isinstance(box, widgets.HBox) and pairs[0] in box.children)
    assert row.layout.flex_flow == "row wrap"


def _walk(widget: widgets.Widget) -> list[widgets.Widget]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found += _walk(child)
    return found
