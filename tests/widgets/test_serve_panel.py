"""ServePanel: a real server on 127.0.0.1 for the smoke MLP, started, load-tested level by level with
a live plot, stopped; controls and traits follow each other; errors are shown inside the widget,
escaped; close() stops the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import traitlets

import workbench as wb
import workbench.core.serve as core_serve
from workbench.widgets.serve import ServePanel, request_inputs

WAIT_S = 60


@pytest.fixture
def panels() -> Iterator[list[ServePanel]]:
    """Panels made by a test; each is closed (its server stopped) at the end, whatever happened."""
    made: list[ServePanel] = []
    yield made
    for panel in made:
        panel.close()
    assert all(p.server is None for p in made)


def _panel(panels: list[ServePanel], onnx_model: Any, **options: Any) -> ServePanel:
    options = {"concurrency": [1, 4], "duration_s": 0.3, "max_batch": 8, "max_wait_ms": 2.0, **options}
    panel = ServePanel(onnx_model, **options)
    panels.append(panel)
    return panel


def _started(panel: ServePanel) -> ServePanel:
    panel.start_button.click()
    assert panel.wait(WAIT_S) and panel.state == "done", panel.error
    return panel


@pytest.mark.slow
def test_start_load_test_with_a_live_plot_then_stop(mlp_onnx: Path, panels: list[ServePanel],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    panel = _panel(panels, mlp_onnx)
    assert panel.state == "idle" and "Ready to serve" in panel.status.value and panel.load_button.disabled
    _started(panel)
    url = panel.url
    assert url.startswith("http://127.0.0.1:") and panel.server.running and "Serving at" in panel.status.value
    assert httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
    assert panel.start_button.description == "Restart" and not panel.load_button.disabled
    assert "mlp" in panel.server_line.value and "max_batch 8" in panel.server_line.value

    drawn: list[list[int]] = []
    real_show = panel.figure.show
    monkeypatch.setattr(panel.figure, "show", lambda fig, **kw: (drawn.append(list(fig.data[0].x)), real_show(fig, **kw)))
    calls: list[tuple[int, ...]] = []
    real_load = core_serve.load_test
    monkeypatch.setattr(core_serve, "load_test", lambda *a, concurrency, **kw: (calls.append(tuple(concurrency)),
                                                                                 real_load(*a, concurrency=concurrency, **kw))[1])
    panel.load_button.click()
    assert panel.wait(WAIT_S) and panel.state == "done", panel.error
    assert calls == [(1,), (4,)] and drawn == [[1], [1, 4]]  # one level at a time, the plot growing
    result = panel.result
    assert [lv.concurrency for lv in result.levels] == [1, 4] and not result.cancelled
    assert all(lv.ok > 0 and not lv.errors for lv in result.levels), str(result)
    assert "Done: best" in panel.status.value and panel.progress.value == panel.progress.max == 2
    assert {t.meta["kind"] for t in panel.figure.data} == {"throughput", "p99"}
    assert panel.table.value.count("<tr>") == 3 and "mean batch" in panel.table.value
    assert "requests" in panel.metrics_box.value
    panel.levels_field.value = "2"  # a second run, other levels: the plot is redrawn in place
    panel.load_button.click()
    assert panel.wait(WAIT_S) and panel.state == "done", panel.error
    assert [list(t.x) for t in panel.figure.data] == [[2], [2]] and panel.table.value.count("<tr>") == 2

    panel.stop_button.click()
    assert panel.server is None and panel.url == "" and "Stopped" in panel.status.value
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v1/health", timeout=2)
    assert panel.load_button.disabled and panel.start_button.description == "Start"


def test_the_controls_and_the_traits_follow_each_other(mlp_onnx: Path, panels: list[ServePanel]) -> None:
    panel = _panel(panels, mlp_onnx)
    panel.max_batch, panel.max_wait_ms, panel.duration_s = 4, 1.5, 2.0
    assert (panel.batch_field.value, panel.wait_field.value, panel.duration_field.value) == (4, 1.5, 2.0)
    panel.batch_field.value = 32
    assert panel.max_batch == 32
    panel.levels_field.value = "2, 16"
    assert panel.concurrency == [2, 16]
    panel.concurrency = "1;64"
    assert panel.levels_field.value == "1, 64"
    for name, bad in (("max_batch", 0), ("max_wait_ms", -1.0), ("duration_s", 0.0), ("concurrency", [0])):
        with pytest.raises(traitlets.TraitError):
            setattr(panel, name, bad)
    panel.levels_field.value = "1, x"
    assert panel.state == "failed" and "comma-separated list" in panel.error


def test_errors_are_shown_in_the_widget_and_escaped(panels: list[ServePanel], tmp_path: Path) -> None:
    empty = _panel(panels, "")
    assert "No ONNX model yet" in empty.status.value
    empty.start_button.click()
    assert empty.state == "failed" and "no ONNX model" in empty.error
    empty.load_test()  # the button is disabled in the page; a call from Python says why
    assert empty.state == "failed" and "No server is running" in empty.error

    hostile = _panel(panels, tmp_path / "<img src=x onerror=alert(1)>.onnx")
    assert "<img" not in hostile.status.value and "&lt;img" in hostile.status.value
    hostile.start()
    assert hostile.wait(WAIT_S) and hostile.state == "failed" and hostile.server is None
    assert "<img" not in hostile.status.value and "Could not start the server" in hostile.status.value


def test_a_new_export_stops_the_old_server_reload_restarts_and_close_stops(mlp_onnx: Path, export_zoo: Any,
                                                                  panels: list[ServePanel]) -> None:
    panel = _started(_panel(panels, mlp_onnx))
    old = panel.server
    panel.config = wb.SessionConfig(opt_level="basic")
    assert "Restart" in panel.status.value and "CPU/basic" in panel.status.value
    panel.onnx_model = export_zoo("mlp", "torchscript", batch=1).out
    assert not old.running and panel.server is None and "export changed" in panel.status.value
    _started(panel)
    assert panel.server.config.opt_level == "basic"
    before = panel.server
    panel.reload()  # the file was rewritten in place: a running server restarts on it
    assert panel.wait(WAIT_S) and panel.state == "done" and not before.running, panel.error
    server = panel.server
    assert server is not before and server.running
    panel.close()
    assert not server.running and panel.server is None


def test_cancel_keeps_the_levels_so_far(mlp_onnx: Path, panels: list[ServePanel]) -> None:
    panel = _started(_panel(panels, mlp_onnx, concurrency=[1, 2, 4], duration_s=1.0))
    real_draw = panel._draw

    def draw_then_cancel(result: Any) -> None:
        real_draw(result)
        panel.cancel()

    panel._draw = draw_then_cancel  # type: ignore[method-assign]
    panel.load_test()
    assert panel.wait(WAIT_S) and panel.state == "cancelled", panel.error
    assert panel.result.cancelled and len(panel.result.levels) == 1
    assert "Cancelled after 1 level" in panel.status.value and panel.server is not None


def test_request_inputs_are_one_example_from_the_graph(mlp_onnx: Path) -> None:
    inputs = request_inputs(str(mlp_onnx), None)
    assert list(inputs) == ["x"] and inputs["x"].shape == (1, 16) and str(inputs["x"].dtype) == "float32"
