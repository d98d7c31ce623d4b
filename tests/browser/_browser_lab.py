"""JupyterLab in headless Chromium, driven by Playwright (see shared TESTING.md for the recipe and
its pitfalls: kernel-ready race, Run All stopping at errors, Netron's consent dialog), and the
notebook the browser tests open: the dashboard of the smoke text classifier, then cells they run
one at a time (``run_cell``)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat

CHROMIUM = Path(os.environ.get("WB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
IDLE = "Python 3 (ipykernel) | Idle"

NOTEBOOK = "dashboard.ipynb"
#: The notebook's code cells, run one by one (``run_cell(page, i)``) as the tests need them.
CELLS = (
    # 0: the dashboard, as notebooks/00_start_here shows it
    'import workbench as wb\nfrom workbench.widgets import Workbench\n\n'
    'case = wb.zoo.get("text_classifier", smoke=True)\n'
    'bench = Workbench.from_case(case, out="text_classifier.onnx")\nbench',
    # 1: a graph panel of its own, drawn while the tests block the kernel's ports (Netron through Jupyter)
    'from workbench.widgets import GraphInspector\n\ngraph = GraphInspector(bench.onnx_model)\ngraph',
    # 2: traits set from Python; the controls must follow
    'bench.export.spec = bench.export.spec.replace(exporter="torchscript", opset=17)\n'
    'bench.diff.tolerance = "int8"\nbench.diff.seq = 20\nbench.sweep.batch_sizes = [1, 3]\nbench.select("export")',
)


def write_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    """A JupyterLab server on 127.0.0.1 over a temporary copy of some notebooks."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}&reset"

    def log_tail(self, n: int = 60) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


def _settings(settings_dir: Path) -> None:
    """News and update checks off (they would ask the internet); autosave off (the notebook stays
    as committed, without megabytes of widget state, when a second test opens it)."""
    for plugin, values in (("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False}),
                           ("docmanager-extension/plugin", {"autosave": False})):
        target = settings_dir / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))


def start_lab(workdir: Path, notebooks: list[Path], *, timeout: float = 90) -> LabServer:
    root = workdir / "root"
    root.mkdir(parents=True)
    for nb in notebooks:
        shutil.copy(nb, root / nb.name)
    env = dict(os.environ)
    for name in ("JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        path = workdir / name.lower()
        path.mkdir()
        env[name] = str(path)
    _settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
    env["PYTHONUNBUFFERED"] = "1"
    port, token = free_port(), secrets.token_hex(16)
    log = workdir / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
           "--ServerApp.port_retries=0", "--LabApp.news_url=", "--LabServerApp.extension_manager=readonly"]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = LabServer(root, port, token, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.base}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    stop_lab(server)
    raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{server.log_tail()}")


def stop_lab(server: LabServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)


@dataclass
class Traffic:
    """Every request the page (and its frames and workers) made that did not stay on this machine,
    and the local ones blocked while ``block_ports_except`` is set: then requests to 127.0.0.1 on any
    port but that one (the Jupyter server's) are aborted, so the browser cannot reach the kernel's
    ports, as on a remote server. Tests set and clear it while the page is open."""

    outside: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    block_ports_except: int | None = None


def guard_network(context: Any, traffic: Traffic) -> None:
    """Abort requests that would leave the machine (recorded in ``traffic.outside``), and the local
    ones ``traffic.block_ports_except`` blocks (in ``traffic.blocked``)."""

    def handle(route: Any) -> None:
        url = route.request.url
        match = re.match(r"^(?:https?|wss?)://([^/:]+|\[[^\]]+\])(?::(\d+))?", url)
        if match is None:  # data:, blob: ...
            route.continue_()
            return
        host, port, allowed = match.group(1), match.group(2), traffic.block_ports_except
        if host not in LOCAL_HOSTS:
            traffic.outside.append(url)
            route.abort()
        elif allowed is not None and port is not None and int(port) != allowed:
            traffic.blocked.append(url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", handle)


def open_notebook(page: Any, server: LabServer, notebook: str, *, timeout_ms: int = 90_000) -> None:
    """Open ``notebook`` and wait until its kernel is really idle (the toolbar says idle earlier)."""
    page.goto(server.url(notebook), wait_until="domcontentloaded")
    page.locator("#jp-main-statusbar").get_by_text(IDLE).wait_for(timeout=timeout_ms)


def run_all(page: Any, *, timeout_ms: int = 180_000) -> None:
    """Run > Run All Cells, then wait until every code cell has a number and none shows [*]."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator('li[data-command="runmenu:run-all"]').click()
    deadline = time.monotonic() + timeout_ms / 1000
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
    while time.monotonic() < deadline:
        texts = [t.strip() for t in prompts.all_inner_texts()]
        if texts and all(re.fullmatch(r"\[\d+\]:", t) for t in texts):
            break
        time.sleep(0.25)
    else:
        raise AssertionError(f"Run All did not finish: prompts {prompts.all_inner_texts()}")
    outputs = " ".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    assert "Traceback" not in outputs, outputs[:3000]


def settle(page: Any, *, timeout_ms: int = 30_000) -> None:
    """Wait until the kernel is idle: what the page sent it (a typed field) has been handled. The
    front end buffers a widget's updates while the kernel is busy, and sends a click on another
    widget at once: a robot that types then clicks can overtake its own typing."""
    time.sleep(0.3)
    page.locator("#jp-main-statusbar").get_by_text(IDLE).wait_for(timeout=timeout_ms)


def run_cell(page: Any, index: int, *, timeout_ms: int = 180_000) -> None:
    """Run the notebook's code cell ``index`` (click into it, Shift+Enter) and wait for its number;
    its output must hold no traceback."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    prompt = cell.locator(".jp-InputArea-prompt")
    before = prompt.inner_text().strip()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + timeout_ms / 1000
    while not (re.fullmatch(r"\[\d+\]:", text := prompt.inner_text().strip()) and text != before):
        if time.monotonic() > deadline:
            raise AssertionError(f"cell {index} did not finish: prompt {prompt.inner_text()!r}")
        time.sleep(0.1)
    output = " ".join(cell.locator(".jp-OutputArea-output").all_inner_texts())
    assert "Traceback" not in output, output[:3000]


def frame_text(frame: Any) -> str:
    """The visible text of an iframe (Netron replaces window.eval: use locators, not evaluate)."""
    try:
        return frame.locator("body").inner_text(timeout=2000)[:2000]
    except Exception as exc:  # for failure messages only
        return f"<no text: {exc}>"


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> float:
    """Poll ``predicate()`` until true; the seconds it took. ``TimeoutError`` after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - start


class Laps:
    """Prints how long each step of a browser test took (CI logs show where the time goes)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = self.last = time.monotonic()

    def __call__(self, step: str) -> None:
        now = time.monotonic()
        print(f"[{self.name}] {step}: {now - self.last:.1f} s (total {now - self.start:.1f} s)", flush=True)
        self.last = now
