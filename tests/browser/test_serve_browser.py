"""The Serve tab as a person uses it: JupyterLab in headless Chromium runs a notebook that exports the
smoke MLP in the ``Workbench`` dashboard and shows its "6 Serve" tab; a click on Start serves it (the panel shows the URL), a short
load test fills the plot level by level and the table, the metrics appear; a click on Stop stops the
server, and the notebook's next cell checks from the kernel that it is gone. It shares the browser
tests' JupyterLab (its notebook is written into that server's folder). Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator

import nbformat
import pytest
from _browser_lab import LabServer, Laps, Traffic, guard_network, open_notebook, run_cell, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "serve.ipynb"
CELLS = (
    # 0: the dashboard of the smoke MLP, exported from the cell, on its Serve tab
    'import workbench as wb\nfrom workbench.widgets import Workbench\n\n'
    'case = wb.zoo.get("mlp", smoke=True)\n'
    'bench = Workbench.from_case(case, out="mlp.onnx")\n'
    'assert bench.export.wait(120), "the form did not read the model"  # spec is None until it has\n'
    'bench.export.spec = bench.export.spec.replace(exporter="torchscript", opset=17)\n'
    'bench.export.export()\nassert bench.wait(300), "the export did not finish"\n'
    'bench.serve.concurrency, bench.serve.duration_s, bench.serve.max_batch = [1, 4], 0.5, 8\n'
    'bench.select("serve")\nbench',
    # 1: after the clicks, from the kernel: the panel's result, and no server left running
    'panel = bench.serve\n'
    'assert panel.result is not None and [lv.concurrency for lv in panel.result.levels] == [1, 4], panel.result\n'
    'assert panel.server is None, panel.server\nprint("levels", len(panel.result.levels), "server", panel.server)',
    # 2: close the dashboard (every panel; nothing left to stop)
    'bench.close()',
)


@pytest.fixture(scope="module")
def serve_page(lab: LabServer, browser: Any, artifacts: Path) -> Iterator[Any]:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, lab.root / NOTEBOOK)
    traffic = Traffic()
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    guard_network(context, traffic)
    page = context.new_page()
    try:
        yield page
    except Exception:
        raise
    finally:
        if page.locator(".wb-serve-panel").count():
            page.screenshot(path=str(artifacts / "browser_serve_last.png"), full_page=True)
        context.close()
    assert traffic.outside == [], f"requests left the machine: {traffic.outside}"


def _status(panel: Any) -> str:
    return panel.locator(".wb-status").inner_text()


def _wait_for(panel: Any, text: str, *, timeout: float) -> None:
    """Until the status says ``text``; a failure shown in the panel fails at once with its message."""
    failed = panel.locator(".wb-status-failed")
    wait_until(lambda: text in _status(panel) or failed.count() > 0, timeout=timeout, interval=0.2)
    assert failed.count() == 0, _status(panel)


def test_start_a_load_test_fills_the_plot_then_stop(serve_page: Any, lab: LabServer, artifacts: Path) -> None:
    page, lap = serve_page, Laps("serve")
    open_notebook(page, lab, NOTEBOOK)
    run_cell(page, 0)
    panel = page.locator(".wb-workbench .wb-serve-panel")
    panel.wait_for(timeout=60_000)
    assert "Ready to serve" in _status(panel)
    assert page.locator(".wb-workbench .wb-tabs .lm-TabBar-tab.lm-mod-current").inner_text().strip() == "6 Serve"
    lap("open the notebook, export, show the Serve tab")

    panel.locator(".wb-serve-start").click()
    _wait_for(panel, "Serving at", timeout=90)
    assert re.search(r"http://127\.0\.0\.1:\d+", panel.locator(".wb-serve-server").inner_text())
    panel.screenshot(path=str(artifacts / "browser_serve_1_started.png"))
    lap("start the server")

    panel.locator(".wb-serve-load").click()
    _wait_for(panel, "Done: best", timeout=120)
    plot = panel.locator(".wb-figure-serve-load .js-plotly-plot")
    plot.wait_for(timeout=30_000)
    traces = plot.locator(".scatterlayer .trace")
    wait_until(lambda: traces.count() >= 2, timeout=60)
    assert plot.locator(".scatterlayer .trace").first.locator(".point").count() == 2  # a point per level
    rows = panel.locator(".wb-serve-levels table tbody tr")
    assert rows.count() == 2, panel.locator(".wb-serve-levels").inner_text()
    assert "requests" in panel.locator(".wb-serve-metrics").inner_text()
    time.sleep(0.3)  # plotly's layout pass
    panel.screenshot(path=str(artifacts / "browser_serve_2_load_test.png"))
    page.set_viewport_size({"width": 1000, "height": 1400})  # the plots fit a narrower page too
    time.sleep(0.6)
    box = plot.bounding_box()
    assert box is not None and box["width"] <= 1000, box
    panel.screenshot(path=str(artifacts / "browser_serve_2_load_test_1000px.png"))
    page.set_viewport_size({"width": 1400, "height": 1400})
    lap("load test, two levels")

    panel.locator(".wb-serve-stop").click()
    _wait_for(panel, "Stopped", timeout=60)
    assert panel.locator(".wb-serve-server").inner_text().strip() == ""
    panel.screenshot(path=str(artifacts / "browser_serve_3_stopped.png"))
    run_cell(page, 1)
    output = page.locator(".jp-Notebook .jp-CodeCell").nth(1).locator(".jp-OutputArea-output").inner_text()
    assert "levels 2 server None" in output, output
    run_cell(page, 2)
    lap("stop, checked from the kernel")
