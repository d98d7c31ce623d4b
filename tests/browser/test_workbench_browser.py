"""The workbench as a person uses it: JupyterLab in headless Chromium opens the tests' notebook (the
dashboard of the smoke text classifier, as notebooks/00_start_here shows it), runs it and clicks
Export; then, on that one page: Netron draws the graph; flipping the optimization level redraws the
diff; the sweep runs twice with other sizes; every tab is shot at 1400 and 1000 px; traits set from
Python move the controls; a TorchScript export shows the shape probes' failure (DYN002) in the form,
the diff names the size that fails instead of ONNX Runtime's message, and the retry with dynamo
passes. With the kernel's ports blocked, a new graph panel shows Netron through the Jupyter server.
One page and one kernel serve every test (a second page would fetch every widget's state again,
plotly's bundle included). Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from _browser_lab import (
    NOTEBOOK,
    LabServer,
    Laps,
    Traffic,
    frame_text,
    guard_network,
    open_notebook,
    run_cell,
    settle,
    wait_until,
)

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 1500}
WIDTHS = (1400, 1000)
TABS = {"export": "1 Export", "graph": "2 Graph", "compare": "3 Compare", "latency": "4 Latency"}
NODES = "svg#canvas g.node"
# In the page: the time from the click on the toggles to the frame after all three diff plots show
# the new config in their titles (plotly updates traces and title in one Plotly.update).
_REDRAW_PROBE = """label => {
    const diff = document.querySelector('.wb-live-diff');
    const probe = window.__wbRedraw = {clicked: null, drawn: null};
    const done = () => {
        const titles = [...diff.querySelectorAll('.js-plotly-plot .gtitle')].map(e => e.textContent);
        return titles.length === 3 && titles.every(t => t.includes(label));
    };
    const observer = new MutationObserver(() => {
        if (probe.clicked !== null && probe.drawn === null && done()) {
            observer.disconnect();
            requestAnimationFrame(() => { probe.drawn = performance.now(); });
        }
    });
    observer.observe(diff, {subtree: true, childList: true, characterData: true, attributes: true});
    document.querySelector('.wb-opt-level').addEventListener(
        'click', () => { probe.clicked = performance.now(); }, {capture: true, once: true});
}"""


class Dashboard:
    """One page with the notebook open and the dashboard shown, shared by the tests of this module."""

    def __init__(self, page: Any, traffic: Traffic, artifacts: Path, lap: Laps) -> None:
        self.page, self.traffic, self.artifacts, self.lap = page, traffic, artifacts, lap
        self.bench = page.locator(".wb-workbench")

    def tab(self, name: str) -> None:
        self.bench.locator(".wb-tabs .lm-TabBar-tab", has_text=TABS[name]).click()

    def shot(self, locator: Any, name: str) -> None:
        time.sleep(0.3)  # let plotly and Netron finish their layout pass before the picture
        locator.screenshot(path=str(self.artifacts / name))


def _context(browser: Any, traffic: Traffic) -> Any:
    context = browser.new_context(viewport=VIEWPORT)
    guard_network(context, traffic)
    return context


def _open_dashboard(page: Any, lab: LabServer, lap: Laps) -> Any:
    """Open the notebook, run its first cell and wait for the dashboard; returns its locator."""
    open_notebook(page, lab, NOTEBOOK)
    lap("open notebook, kernel idle")
    run_cell(page, 0)
    bench = page.locator(".wb-workbench")
    bench.wait_for(timeout=60_000)
    lap("run the dashboard's cell")
    return bench


def _export(bench: Any, shots: Path, name: str) -> None:
    """Click Export; the export and its shape probes must pass."""
    bench.locator(".wb-export-button").click()
    form = bench.locator(".wb-export-form")
    done, failed = form.locator(".wb-status-done"), form.locator(".wb-status-failed")
    wait_until(lambda: done.count() > 0 or failed.count() > 0, timeout=180, interval=0.25)
    assert failed.count() == 0, form.locator(".wb-status").inner_text()
    text = done.inner_text()
    assert "Exported" in text and "runs and matches PyTorch at batch=1, seq=1" in text, text
    bench.screenshot(path=str(shots / name))


def _show_graph(dash: Dashboard, name: str) -> Any:
    dash.tab("graph")
    dash.bench.locator(".wb-graph-inspector .wb-status-done").wait_for(timeout=60_000)
    frame = dash.bench.frame_locator("iframe.wb-netron-frame")
    try:
        frame.locator(NODES).first.wait_for(timeout=60_000)
    except Exception as exc:
        status = dash.bench.locator(".wb-netron-status").inner_text()
        raise AssertionError(f"Netron drew no graph. Widget: {status!r}. Frame text: {frame_text(frame)!r}") from exc
    assert frame.locator(NODES).count() > 20
    dash.shot(dash.bench, name)
    return frame


@pytest.fixture(scope="module")
def dash(lab: LabServer, browser: Any, artifacts: Path) -> Iterator[Dashboard]:
    """The dashboard open in one page, after a first (dynamo) export."""
    traffic = Traffic()
    context = _context(browser, traffic)
    page = context.new_page()
    page.on("console", lambda msg: traffic.console.append(f"{msg.type}: {msg.text}"))
    lap = Laps("dashboard")
    try:
        _open_dashboard(page, lab, lap)
        dashboard = Dashboard(page, traffic, artifacts, lap)
        _export(dashboard.bench, artifacts, "browser_1_export.png")
        lap("export (dynamo) and shape probes")
        yield dashboard
    except Exception:
        page.screenshot(path=str(artifacts / "browser_failure_open.png"), full_page=True)
        print(lab.log_tail())
        raise
    finally:
        context.close()
    assert traffic.outside == [], f"requests left the machine: {traffic.outside}"
    assert not [m for m in traffic.console if "Content Security Policy" in m], traffic.console


@pytest.fixture(autouse=True)
def _picture_of_a_failure(request: pytest.FixtureRequest, lab: LabServer, artifacts: Path) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "dash" in request.fixturenames:
        dash: Dashboard = request.getfixturevalue("dash")
        dash.page.screenshot(path=str(artifacts / f"browser_failure_{request.node.name}.png"), full_page=True)
        print("\n".join(dash.traffic.console[-40:]))
        print(lab.log_tail())


def test_netron_draws_the_graph(dash: Dashboard) -> None:
    frame = _show_graph(dash, "browser_2_graph_netron_direct.png")
    dash.lap("graph and netron")
    status = dash.bench.locator(".wb-netron-status").inner_text()
    assert "directly" in status, status
    assert frame.locator("html[data-workbench-offline='1']").count() == 1
    assert dash.bench.locator(".wb-graph-tables").inner_text().count("input_ids") >= 1


def test_netron_through_jupyter_server(dash: Dashboard, lab: LabServer) -> None:
    """With the kernel's ports unreachable from the browser (as on Binder or JupyterHub), a graph panel
    drawn then (cell 1) shows Netron through the Jupyter server."""
    dash.traffic.block_ports_except = lab.port
    try:
        run_cell(dash.page, 1)
        cell = dash.page.locator(".jp-Notebook .jp-CodeCell").nth(1)
        cell.locator(".wb-graph-inspector .wb-status-done").wait_for(timeout=60_000)
        frame = cell.frame_locator("iframe.wb-netron-frame")
        try:
            frame.locator(NODES).first.wait_for(timeout=60_000)
        except Exception as exc:
            status = cell.locator(".wb-netron-status").inner_text()
            raise AssertionError(f"Netron drew no graph. Widget: {status!r}. Frame: {frame_text(frame)!r}") from exc
        assert frame.locator(NODES).count() > 20
        status = cell.locator(".wb-netron-status").inner_text()
        assert "through the Jupyter server" in status, status
        src = cell.locator("iframe.wb-netron-frame").get_attribute("src") or ""
        assert re.search(r"^/proxy/127\.0\.0\.1:\d+/[\w-]+/", src), src
        port = int(re.search(r"127\.0\.0\.1:(\d+)", src).group(1))
        assert any(f"127.0.0.1:{port}/" in url for url in dash.traffic.blocked), dash.traffic.blocked
        dash.shot(cell.locator(".wb-graph-inspector"), "browser_7_graph_netron_proxy.png")
    finally:
        dash.traffic.block_ports_except = None
    dash.lap("netron through the Jupyter server")


def test_the_diff_redraws_when_the_optimization_level_flips(dash: Dashboard) -> None:
    page, bench = dash.page, dash.bench
    dash.tab("compare")
    diff = bench.locator(".wb-live-diff")
    titles = diff.locator(".js-plotly-plot .gtitle")
    wait_until(lambda: titles.count() == 3 and all("CPU/all" in t for t in titles.all_text_contents()), timeout=60)
    assert diff.locator(".wb-verdict-pass").count() == 1
    before = diff.locator(".js-plotly-plot").nth(2).inner_html()
    dash.shot(diff, "browser_3_diff_all.png")
    seconds = []
    for level in ("disable", "basic", "extended", "all", "disable"):
        label = f"CPU/{level}"
        page.evaluate(_REDRAW_PROBE, label)
        bench.locator(".wb-opt-level button", has_text=level).click()
        wait_until(lambda: page.evaluate("window.__wbRedraw.drawn !== null"), timeout=30, interval=0.02)
        seconds.append(page.evaluate("(window.__wbRedraw.drawn - window.__wbRedraw.clicked) / 1000"))
        status = diff.locator(".wb-status")
        wait_until(lambda: "Compared with " + label in status.inner_text(), timeout=10)
    print(f"toggle -> all three diff plots redrawn in the browser: {' '.join(f'{s:.3f}' for s in seconds)} s")
    (dash.artifacts / "browser_redraw_seconds.txt").write_text(" ".join(f"{s:.3f}" for s in seconds) + "\n")
    assert "CPU/disable" in diff.locator(".wb-diff-verdict").inner_text()
    assert diff.locator(".js-plotly-plot").nth(2).inner_html() != before, "the error bars did not change"
    dash.shot(diff, "browser_4_diff_disable.png")
    dash.lap("diff and toggle")


def _sweep(page: Any, sweep: Any, batch_sizes: str, seq_lens: str | None) -> str:
    """Type the grid, press Run and wait for a new table; its text."""
    for label, value in (("batch sizes", batch_sizes), ("seq lengths", seq_lens)):
        if value is not None:
            field = sweep.locator(".widget-text", has_text=label).locator("input")
            field.fill(value)
            field.press("Enter")
    table = sweep.locator(".wb-sweep-table")
    before = table.inner_text()
    settle(page)  # the fields' updates reach the kernel before the click (ipywidgets buffers them per widget)
    sweep.locator(".wb-sweep-run").click()
    done, failed = sweep.locator(".wb-status-done"), sweep.locator(".wb-status-failed")
    wait_until(lambda: failed.count() > 0 or (done.count() > 0 and table.inner_text() != before),
               timeout=120, interval=0.2)
    assert failed.count() == 0, sweep.locator(".wb-status").inner_text()
    return table.inner_text()


def test_the_sweep_runs_twice_with_other_sizes(dash: Dashboard) -> None:
    """A second Run, with other sizes, draws again (it failed with "Invalid property path 'xaxis2'")."""
    dash.tab("latency")
    sweep = dash.bench.locator(".wb-latency-sweep")
    first = _sweep(dash.page, sweep, "1, 2", None)  # the default grid of two sequence lengths
    assert "CPU/all" in first
    traces = sweep.locator(".js-plotly-plot").first.locator(".scatterlayer .trace")
    wait_until(lambda: traces.count() >= 2, timeout=30)
    dash.shot(sweep, "browser_5_sweep.png")
    second = _sweep(dash.page, sweep, "1, 4", "8, 24")
    assert second != first and re.search(r"\b24\b", second) and re.search(r"\b4\b", second), second
    wait_until(lambda: traces.count() >= 2, timeout=30)
    assert "xaxis2" not in sweep.inner_text()
    dash.shot(sweep, "browser_5_sweep_second_run.png")
    dash.lap("sweep twice")


def test_every_tab_at_two_widths(dash: Dashboard) -> None:
    """Screenshots of each tab at 1400 and 1000 px (look at them when a panel or figure changes)."""
    for width in WIDTHS:
        dash.page.set_viewport_size({"width": width, "height": 3000})  # tall enough for a whole tab
        for name in TABS:
            dash.tab(name)
            if name == "graph":
                dash.bench.frame_locator("iframe.wb-netron-frame").locator(NODES).first.wait_for(timeout=30_000)
            dash.shot(dash.bench, f"browser_tab_{name}_{width}.png")
    dash.page.set_viewport_size(VIEWPORT)
    dash.lap("tabs at two widths")


def _control_value(locator: Any) -> str:
    return str(locator.evaluate("e => e.tagName === 'SELECT' ? e.options[e.selectedIndex]?.text ?? '' : e.value"))


def test_traits_set_from_python_move_the_controls(dash: Dashboard) -> None:
    """Cell 2 sets bench.export.spec (torchscript, opset 17), bench.diff.tolerance = "int8",
    bench.diff.seq = 20, bench.sweep.batch_sizes = [1, 3] and selects the Export tab."""
    page, bench = dash.page, dash.bench
    run_cell(page, 2)
    form = bench.locator(".wb-export-form")
    wait_until(lambda: form.is_visible(), timeout=10)  # bench.select("export") moved the tab
    exporter = form.locator(".wb-exporter button.mod-active")
    wait_until(lambda: exporter.inner_text().strip() == "torchscript", timeout=10)
    assert _control_value(form.locator(".wb-opset input")) == "17"
    diff = bench.locator(".wb-live-diff")
    assert _control_value(diff.locator(".wb-tolerance select")) == "int8"
    assert diff.locator(".wb-slider-seq .widget-readout").inner_text().strip() == "20"
    batch = bench.locator(".wb-latency-sweep .widget-text", has_text="batch sizes").locator("input")
    assert _control_value(batch) == "1, 3"
    dash.lap("traits from Python")


def test_a_torchscript_export_shows_the_probe_failure_and_the_retry_passes(dash: Dashboard) -> None:
    """Export (torchscript, set by cell 2): the form shows DYN002 with its fix and a retry button; the
    diff at seq 20 names the shape that fails instead of ONNX Runtime's message; the retry with dynamo
    passes and the diff at seq 20 passes too."""
    bench = dash.bench
    if bench.locator(".wb-exporter button.mod-active").inner_text().strip() != "torchscript":
        pytest.skip("needs cell 2 (test_traits_set_from_python_move_the_controls) to have run")
    dash.tab("export")
    form = bench.locator(".wb-export-form")
    bench.locator(".wb-export-button").click()
    failed = form.locator(".wb-status-failed")
    failed.wait_for(timeout=120_000)
    text = failed.inner_text()
    assert "[DYN002]" in text and "A shape was baked into the graph by tracing" in text, text
    assert "dynamo exporter" in text and "Reshape" in text, text
    retry = form.locator(".wb-retry-button")
    assert retry.is_visible() and "dynamo" in retry.inner_text(), retry.inner_text()
    dash.shot(bench, "browser_8_export_torchscript_dyn002.png")
    dash.lap("torchscript export and probes")

    dash.tab("compare")
    diff = bench.locator(".wb-live-diff")
    message = diff.locator(".wb-status-failed")
    message.wait_for(timeout=60_000)
    shown = message.inner_text()
    assert "input_ids 2×20" in shown and "seq=32" in shown and "torchscript" in shown, shown
    assert "ONNXRuntimeError" not in shown and "Traceback" not in shown, shown
    dash.shot(diff, "browser_9_diff_size_fails.png")

    dash.tab("export")
    retry.click()
    done = form.locator(".wb-status-done")
    done.wait_for(timeout=180_000)
    assert "PASSES" in done.inner_text() and not retry.is_visible()
    assert form.locator(".wb-exporter button.mod-active").inner_text().strip() == "dynamo"
    dash.shot(bench, "browser_10_export_retry_dynamo.png")
    dash.tab("compare")
    wait_until(lambda: diff.locator(".wb-verdict-pass").count() == 1, timeout=60)
    assert "2, 20" in diff.locator(".wb-diff-verdict").inner_text()
    dash.lap("retry with dynamo")
