"""The per-model Netron server and its widget: what is served, what is refused, and when it stops;
its hardening (issue 9 §5: Host, headers, files, timeouts, stop) and its fonts (issue 10: Netron's
shape brackets drawn as boxes with only DejaVu/Liberation installed)."""

from __future__ import annotations

import concurrent.futures

import base64
import dataclasses
import gc
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.widgets.netron import (
    NetronServer,
    NetronView,
    live_servers,
    render_index,
)
from workbench.widgets.netron.page import font_overrides, netron_css, netron_root, page_csp
from workbench.widgets.netron.policy import external_file, route_of
from workbench.widgets.netron.server import CSP, MAX_CONNECTIONS

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, b"", {}


def test_index_opens_the_model_offline() -> None:
    page = render_index("my model.onnx")
    assert '<meta name="file" content="data/my%20model.onnx">' in page
    assert f'content="{CSP}"' in page and "connect-src 'self'" in CSP
    assert page.count("Content-Security-Policy") == 1
    # the offline patch runs after Netron's loader is defined and before its modules load
    assert page.index('src="index.js"') < page.index('src="workbench-offline.js"')
    offline = (Path(__file__).parents[2] / "workbench/widgets/netron/offline.js").read_text()
    assert "'consent'" in offline and "packaged = false" in offline


def test_server_serves_only_the_model(mlp_onnx: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(mlp_onnx.read_bytes())
    (tmp_path / "secret.txt").write_text("not for the browser")
    (tmp_path / "m.onnx.data").write_bytes(b"weights")
    with NetronServer(model, extra_files=["m.onnx.data", "../etc/passwd"]) as server:
        assert server.url.startswith("http://127.0.0.1:") and server in live_servers()
        base = server.url
        status, body, _ = _get(base)
        assert status == 200 and b"workbench-offline.js" in body
        assert _get(base + "data/m.onnx")[1] == model.read_bytes()
        assert _get(base + "data/m.onnx.data")[1] == b"weights"
        assert _get(base + "data/secret.txt")[0] == 404
        assert _get(base + "workbench-offline.js")[0] == 200
        assert _get(base + "onnx.js")[0] == 200  # Netron's own front end
        assert _get(base + "server.py")[0] == 404
        assert _get(f"http://127.0.0.1:{server.port}/index.html")[0] == 404  # no token, nothing
        status, body, headers = _get(base + "wb-id")
        assert json.loads(body) == {"token": server.token, "model": "m.onnx"}
        assert headers.get("Access-Control-Allow-Origin") == "*"
        assert server.proxy_path("/user/x/") == f"/user/x/proxy/127.0.0.1:{server.port}/{server.token}/"
        port = server.port
    assert not server.running and server not in live_servers()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_view_serves_its_onnx_model_and_stops_on_close(mlp_onnx: Path) -> None:
    view = NetronView(mlp_onnx)
    first = view.server
    assert first is not None and first.running and view.port == first.port and view.token == first.token
    assert view.model_name == mlp_onnx.name and view.netron_version
    revision = view.revision
    view.reload()
    assert view.revision == revision + 1 and view.server is first
    view.show(mlp_onnx)  # the same file again (a re-export): a fresh server
    assert view.server is not first and not first.running
    view.onnx_model = ""
    assert view.server is None and view.port == 0
    view.onnx_model = str(mlp_onnx)
    running = view.server
    view.close()
    assert not running.running and live_servers() == []


def test_external_data_files_are_served(tmp_path: Path, mlp_onnx: Path) -> None:
    proto = onnx.load(str(mlp_onnx))
    target = tmp_path / "ext.onnx"
    onnx.save_model(proto, str(target), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    view = NetronView(target, extra_files=["ext.onnx.data"])
    try:
        status, body, _ = _get(view.server.url + "data/ext.onnx.data")
        assert status == 200 and body == (tmp_path / "ext.onnx.data").read_bytes()
    finally:
        view.close()


# --- Helpers of the hardening tests (issue 9 §5, issue 10's missing glyphs) ---------------------------

def _request(server: NetronServer, path: str = "", *, headers: dict[str, str] | None = None,
             method: str = "GET") -> tuple[int, bytes, http.client.HTTPMessage]:
    """One request with exactly these headers (``Host`` included: http.client then adds none)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request(method, f"/{server.token}/{path}",
                           headers=headers if headers is not None else {"Host": f"127.0.0.1:{server.port}"})
        response = connection.getresponse()
        return response.status, response.read(), response.headers
    finally:
        connection.close()


def _tiny_model(path: Path, *, location: str | None = None) -> Path:
    """A MatMul with a 1000x64 weight (Netron labels it ``B〈1000×64〉``); its weight in ``location``
    (external data) when given."""
    weight = numpy_helper.from_array(np.zeros((1000, 64), np.float32), "data")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "data"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.parent.mkdir(parents=True, exist_ok=True)
    if location is None:
        onnx.save_model(model, str(path))
    else:
        (path.parent / location).parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(model, str(path), save_as_external_data=True, location=location, size_threshold=0)
    return path


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _closed_by_server(client: socket.socket, timeout: float) -> bool:
    """True when the server ended the connection (EOF or reset) within ``timeout`` seconds."""
    client.settimeout(timeout)
    try:
        while client.recv(1024):  # an answer before the end (an error status) is read past
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


# --- Host header ------------------------------------------------------------------------------------

PORT = 41234


@pytest.mark.parametrize("hosts, context, kind", [
    ([f"127.0.0.1:{PORT}"], None, "direct"),
    ([f"localhost:{PORT}"], None, "direct"),
    ([f"LOCALHOST:{PORT}"], None, "direct"),
    ([f"[::1]:{PORT}"], None, "direct"),
    # jupyter-server-proxy forwards the browser's Host (the Jupyter server's) and adds its context
    (["127.0.0.1:8888"], f"/proxy/127.0.0.1:{PORT}", "proxy"),
    (["hub.example.org"], f"/user/ana/proxy/127.0.0.1:{PORT}", "proxy"),
    (["hub.example.org:443"], f"/user/ana/proxy/{PORT}", "proxy"),
    # a proxy that rewrites Host to its upstream
    ([f"127.0.0.1:{PORT}"], f"/proxy/127.0.0.1:{PORT}", "direct"),
    # refused: DNS rebinding (another name with this port), forged context, other ports, odd values
    ([f"evil.example:{PORT}"], None, None),
    ([f"evil.example:{PORT}"], f"/proxy/127.0.0.1:{PORT}", None),
    (["hub.example.org"], None, None),
    (["hub.example.org"], "/proxy/127.0.0.1:1", None),
    ([f"127.0.0.1:{PORT + 1}"], None, None),
    (["127.0.0.1"], None, None),
    ([f"127.0.0.2:{PORT}"], None, None),
    ([], None, None),
    ([f"127.0.0.1:{PORT}", f"127.0.0.1:{PORT}"], None, None),
    ([f"127.0.0.1:{PORT} "], None, "direct"),
    ([f"localhost.:{PORT}"], None, None),
    ([f"user@127.0.0.1:{PORT}"], None, None),
])
def test_host_header_routes(hosts: list[str], context: str | None, kind: str | None) -> None:
    route = route_of(hosts, context, port=PORT)
    assert (route.kind if route else None) == kind


def test_allowed_hosts_and_the_csp_scope_of_each_route() -> None:
    assert route_of(["notebooks.example.org"], None, port=PORT) is None
    assert route_of(["notebooks.example.org"], None, port=PORT, allowed_hosts=["notebooks.example.org"]).kind == "allowed"
    assert route_of([f"127.0.0.1:{PORT}"], None, port=PORT).scope("t") == f"http://127.0.0.1:{PORT}/t/"
    proxied = route_of(["hub.example.org"], f"/user/ana/proxy/127.0.0.1:{PORT}", port=PORT)
    assert proxied.scope("t") == f"http://hub.example.org/user/ana/proxy/127.0.0.1:{PORT}/t/"
    assert route_of([f"127.0.0.1:{PORT}"], f"/proxy/127.0.0.1:{PORT}", port=PORT).scope("t") is None  # unknown origin
    assert page_csp(None) == CSP and page_csp("http://x/;script-src *") == CSP
    scoped = page_csp(proxied.scope("t"))
    assert "'self'" not in scoped and f"script-src http://hub.example.org/user/ana/proxy/127.0.0.1:{PORT}/t/" in scoped


def test_the_server_refuses_a_wrong_host(mlp_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_NETRON_ALLOWED_HOSTS", "localhost:9999, ")
    with NetronServer(mlp_onnx, allowed_hosts=["nb.example.org"]) as server:
        port = server.port
        assert _request(server)[0] == 200
        assert _request(server, headers={"Host": f"localhost:{port}"})[0] == 200
        assert _request(server, headers={"Host": "nb.example.org"})[0] == 200
        assert _request(server, headers={"Host": "localhost:9999"})[0] == 200  # from the environment
        assert _request(server, headers={"Host": "localhost:9998"})[0] == 403
        status, body, _ = _request(server, f"data/{mlp_onnx.name}", headers={"Host": f"attacker.example:{port}"})
        assert status == 403 and b"Forbidden" in body
        assert _request(server, "wb-id", headers={"Host": f"attacker.example:{port}",
                                                  "X-Forwarded-Context": f"/proxy/127.0.0.1:{port}"})[0] == 403
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # no Host at all (HTTP/1.0)
            raw.sendall(f"GET /{server.token}/ HTTP/1.0\r\n\r\n".encode())
            assert raw.makefile("rb").readline().split()[1] == b"403"
        proxied = {"Host": "127.0.0.1:8888", "X-Forwarded-Context": f"/proxy/127.0.0.1:{port}"}
        status, body, headers = _request(server, headers=proxied)
        assert status == 200 and b"workbench-netron.css" in body
        assert f"connect-src http://127.0.0.1:8888/proxy/127.0.0.1:{port}/{server.token}/" in headers["Content-Security-Policy"]


def test_security_headers_on_every_answer(mlp_onnx: Path) -> None:
    with NetronServer(mlp_onnx) as server:
        scope = f"http://127.0.0.1:{server.port}/{server.token}/"
        answers = [_request(server), _request(server, "onnx.js"), _request(server, f"data/{mlp_onnx.name}"),
                   _request(server, "nothing-here.js"), _request(server, headers={"Host": "x.example"}),
                   _request(server, method="POST")]
        assert [status for status, _, _ in answers] == [200, 200, 200, 404, 403, 501]
        for status, _, headers in answers:
            assert headers["X-Content-Type-Options"] == "nosniff", status
            assert headers["Server"] == "workbench-netron", status  # no Python version
            assert "Python" not in headers["Server"]
            assert "connect-src" in headers["Content-Security-Policy"] and "object-src 'none'" in headers["Content-Security-Policy"]
        page_headers = answers[0][2]
        assert page_headers["Content-Security-Policy"] == page_csp(scope)
        assert f"script-src {scope}" in page_headers["Content-Security-Policy"]
        assert b'http-equiv="Content-Security-Policy"' in answers[0][1]  # and the meta tag, as before
        assert answers[1][2]["Content-Type"] == "text/javascript"


# --- Files ------------------------------------------------------------------------------------------

def test_only_files_inside_the_models_folder_are_served(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    model = _tiny_model(folder / "m.onnx", location="weights/m.bin")  # external data in a subfolder
    (tmp_path / "secret.txt").write_text("not for the browser")
    (folder / "out.bin").symlink_to(tmp_path / "secret.txt")
    (folder / "in.bin").symlink_to(folder / "weights" / "m.bin")
    names = ["weights/m.bin", "in.bin", "out.bin", "../secret.txt", str(tmp_path / "secret.txt"),
             "weights/../../secret.txt", "weights/../weights/m.bin", "~/secret.txt", "weights", ""]
    with NetronServer(model, extra_files=names) as server:
        assert set(server.served_files()) == {"m.onnx", "weights/m.bin", "in.bin"}
        weights = (folder / "weights" / "m.bin").read_bytes()
        assert _request(server, "data/weights/m.bin")[1] == weights  # 0.1 served only the model's own folder level
        assert _request(server, "data/in.bin")[1] == weights  # a symlink that stays inside
        for name in names[2:]:
            assert _request(server, "data/" + urllib.parse.quote(name))[0] == 404, name
        assert _request(server, "data/%2e%2e/secret.txt")[0] == 404
        assert _request(server, "data/secret.txt")[0] == 404
        # checked per request: a served file later swapped for a link out of the folder is refused
        (folder / "in.bin").unlink()
        (folder / "in.bin").symlink_to(tmp_path / "secret.txt")
        assert _request(server, "data/in.bin")[0] == 404


def test_external_file_rules(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "w.bin").write_bytes(b"w")
    assert external_file(tmp_path, "a/w.bin") == (tmp_path / "a" / "w.bin").resolve()
    for name in ("/etc/passwd", "a/../a/w.bin", "..", "a\\w.bin", "a", "missing.bin", "a/w.bin\x00"):
        assert external_file(tmp_path, name) is None, name


# --- Connections ------------------------------------------------------------------------------------

def test_a_request_that_never_completes_times_out(mlp_onnx: Path) -> None:
    with NetronServer(mlp_onnx, request_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            client.sendall(f"GET /{server.token}/ HTTP/1.1\r\nHost: 127.0".encode())
            assert _closed_by_server(client, timeout=10)  # 0.1 waited forever
        assert _wait(lambda: server.open_connections == 0, 5)


def test_stop_closes_half_sent_requests(mlp_onnx: Path) -> None:
    """100 connections that never finish their request: after stop() their threads end and their
    sockets close within seconds (0.1 kept 100 threads and sockets until each client left)."""
    before = threading.active_count()
    server = NetronServer(mlp_onnx).start()  # the default timeout (15 s) is longer than this test waits
    clients = []
    try:
        for _ in range(100):
            client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            client.sendall(f"GET /{server.token}/ HTTP/1.1\r\nHost: 127.0.0.1".encode())
            clients.append(client)
        assert _wait(lambda: threading.active_count() >= before + 1 + MAX_CONNECTIONS, 10), threading.active_count()
        assert server.open_connections == MAX_CONNECTIONS  # the rest were closed on arrival
        server.stop()
        assert _wait(lambda: threading.active_count() <= before, 5), [t.name for t in threading.enumerate()]
        assert all(_closed_by_server(client, timeout=5) for client in clients)
    finally:
        server.stop()
        for client in clients:
            client.close()


def test_stop_from_the_serving_thread_does_not_hang(mlp_onnx: Path) -> None:
    """A finalizer may run stop() on any thread, the serving one included (shutdown() would wait for itself)."""
    server = NetronServer(mlp_onnx).start()
    serving = server._thread
    assert serving is not None
    done = threading.Event()
    original = server._server.service_actions

    def stop_here() -> None:
        server._server.service_actions = original
        server.stop()
        done.set()

    server._server.service_actions = stop_here  # runs on the serving thread
    assert done.wait(10) and not server.running
    serving.join(5)
    assert not serving.is_alive()


# --- Views: closed, collected -------------------------------------------------------------------------

def test_a_closed_view_serves_nothing_again(mlp_onnx: Path) -> None:
    view = NetronView(mlp_onnx)
    view.close()
    assert view.closed and view.server is None and live_servers() == []
    view.show(mlp_onnx)  # e.g. a panel's worker finishing after the close
    view.onnx_model = ""
    assert view.server is None and live_servers() == []


def test_a_garbage_collected_view_stops_its_server(mlp_onnx: Path) -> None:
    from ipywidgets.widgets.widget import _instances

    view = NetronView(mlp_onnx)
    server = view.server
    assert server is not None and server.running
    view.comm.close()  # as when the front end closes it
    _instances.pop(view.model_id)  # nothing else refers to the view now (0.1: anywidget still held it)
    collected = weakref.ref(view)
    del view
    gc.collect()
    assert collected() is None
    assert _wait(lambda: not server.running, 5) and live_servers() == []


# --- Missing glyphs (issue 10) ----------------------------------------------------------------------

def _cmap(font: bytes) -> set[int]:
    """The code points of a TrueType font's format-4 cmap subtables."""
    tables = {font[12 + 16 * i:16 + 16 * i]: struct.unpack(">I", font[20 + 16 * i:24 + 16 * i])[0]
              for i in range(struct.unpack(">H", font[4:6])[0])}
    cmap, points = tables[b"cmap"], set()
    for j in range(struct.unpack(">H", font[cmap + 2:cmap + 4])[0]):
        base = cmap + struct.unpack(">I", font[cmap + 8 + 8 * j:cmap + 12 + 8 * j])[0]
        if struct.unpack(">H", font[base:base + 2])[0] != 4:
            continue
        segments = struct.unpack(">H", font[base + 6:base + 8])[0] // 2
        ends = struct.unpack(f">{segments}H", font[base + 14:base + 14 + 2 * segments])
        starts = struct.unpack(f">{segments}H", font[base + 16 + 2 * segments:base + 16 + 4 * segments])
        points.update(c for s, e in zip(starts, ends) if s != 0xFFFF for c in range(s, e + 1))
    return points


def _served_font() -> bytes:
    match = re.search(r'url\("data:font/ttf;base64,([A-Za-z0-9+/=]+)"\)', netron_css())
    assert match, "no embedded font in workbench-netron.css"
    return base64.b64decode(match.group(1))


def test_the_served_page_has_a_font_for_netrons_shape_brackets(mlp_onnx: Path) -> None:
    """Netron writes shapes as 〈1000×64〉 (U+3008/U+3009); DejaVu and Liberation have no glyph for
    them. The page serves a font that does, first in every font stack of Netron's CSS."""
    assert {0x3008, 0x3009} <= _cmap(_served_font())
    css = netron_css()
    assert re.search(r"unicode-range:\s*U\+3008-3009", css)
    root = netron_root()
    netron_rules = font_overrides((root / "grapher.css").read_text() + (root / "index.html").read_text())
    assert netron_rules.count("{") >= 5  # Netron's stacks were found
    for rule in netron_rules.splitlines():
        assert rule in css, rule
    with NetronServer(mlp_onnx) as server:
        page = _request(server)[1].decode()
        status, body, headers = _request(server, "workbench-netron.css")
        assert status == 200 and headers["Content-Type"].startswith("text/css") and body.decode() == css
    assert page.index('href="grapher.css"') < page.index("</style>") < page.index('href="workbench-netron.css"')


def test_every_character_of_netrons_labels_has_a_font_here() -> None:
    """Coverage on this machine: each non-ASCII character Netron's drawing code writes has a glyph in
    an installed font or in the served one (0.1: U+3008/U+3009 had none with DejaVu/Liberation)."""
    if shutil.which("fc-list") is None:
        pytest.skip("fontconfig's fc-list is not installed")
    view_js = "".join((netron_root() / name).read_text(encoding="utf-8") for name in ("view.js", "grapher.js"))
    view_js = re.sub(r"/\[[^\]\n]*\]/", "", view_js)  # regular expressions' ranges are not drawn
    characters = {int(code, 16) for code in re.findall(r"\\u([0-9A-Fa-f]{4})", view_js)}
    served = _cmap(_served_font())
    missing = [f"U+{c:04X}" for c in sorted(characters) if c not in served and not subprocess.run(
        ["fc-list", f":charset={c:04x}", "family"], capture_output=True, text=True, check=False).stdout.strip()]
    assert not missing, f"no font for {missing}"


@pytest.mark.browser
def test_netron_draws_the_brackets_with_the_served_font(tmp_path: Path, artifacts: Path) -> None:
    """In Chromium: the shape label's brackets come from the served font (0.1: from a font without
    them, drawn as boxes), and no Content-Security-Policy violation is reported."""
    chromium = Path(os.environ.get("WB_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        pytest.skip(f"no Chromium at {chromium}")
    sync_api = pytest.importorskip("playwright.sync_api")
    model = _tiny_model(tmp_path / "m.onnx")
    # Playwright's sync API refuses a thread whose asyncio loop an earlier test left running: own thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fonts, console = pool.submit(_draw_brackets, sync_api, chromium, model, artifacts).result(timeout=120)
    assert fonts, "no label with 〈 drawn"
    for text, used in fonts:
        assert any(f["familyName"] == "Workbench Brackets" and f["glyphCount"] == 2 for f in used), (text, used)
    assert not [m for m in console if "Content Security Policy" in m], console


def _draw_brackets(sync_api: Any, chromium: Path, model: Path, artifacts: Path) -> tuple[list[Any], list[str]]:
    console: list[str] = []
    with NetronServer(model) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 700}, device_scale_factor=2)
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.goto(server.url)
            page.locator("svg#canvas g.node").first.wait_for(timeout=30_000)
            fonts = _fonts_of_texts_with(page, "\u3008")
            page.locator("svg#canvas g.node", has_text="MatMul").screenshot(path=str(artifacts / "netron_brackets.png"))
        finally:
            browser.close()
    return fonts, console


def _fonts_of_texts_with(page: Any, character: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(text, the fonts Chromium drew it with) for each SVG text containing ``character`` (through
    the DevTools protocol: Netron's page replaces ``window.eval``)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    found = []
    for node in cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": "svg#canvas text"})["nodeIds"]:
        text = re.sub(r"<[^>]+>", "", cdp.send("DOM.getOuterHTML", {"nodeId": node})["outerHTML"])
        if character in text:
            found.append((text, cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]))
    return found


# --- Through the real Jupyter server ------------------------------------------------------------------

@pytest.mark.slow
def test_through_jupyter_server_proxy(mlp_onnx: Path, tmp_path: Path) -> None:
    """jupyter-server-proxy forwards the browser's Host (here a hub's name) with its context header:
    the page is served, with a CSP scoped to the proxy path; the same Host sent straight to the
    kernel's port (a DNS-rebinding page) is refused."""
    jupyter = _start_jupyter(tmp_path)
    try:
        with NetronServer(mlp_onnx) as server:
            path = f"/user/ana/proxy/127.0.0.1:{server.port}/{server.token}/"
            connection = http.client.HTTPConnection("127.0.0.1", jupyter.port, timeout=20)
            connection.request("GET", f"{path}?token={jupyter.token}", headers={"Host": "hub.example.org"})
            response = connection.getresponse()
            body = response.read()
            connection.close()
            assert response.status == 200, (response.status, body[:300], jupyter.log_tail())
            assert b"workbench-offline.js" in body
            assert f"script-src http://hub.example.org{path};" in response.headers["Content-Security-Policy"]
            assert _request(server, headers={"Host": f"hub.example.org:{server.port}"})[0] == 403
            # issue 12: the overlay the page polls, and the node picks it reports, go the same way
            server.channel.set_overlay({"metric": "latency", "kind": "sequential", "unit": "ms",
                                        "nodes": {"n": {"value": 1.0, "label": "1 ms", "title": "n"}}})
            picks: list[str] = []
            server.channel.on_pick = picks.append
            for rest in ("wb-overlay.json", "wb-pick?name=n"):
                connection = http.client.HTTPConnection("127.0.0.1", jupyter.port, timeout=20)
                connection.request("GET", f"{path}{rest}{'&' if '?' in rest else '?'}token={jupyter.token}",
                                   headers={"Host": "hub.example.org"})
                response = connection.getresponse()
                body = response.read()
                connection.close()
                assert response.status in (200, 204), (rest, response.status, body[:300])
                if rest == "wb-overlay.json":
                    assert json.loads(body)["overlay"]["nodes"]["n"]["value"] == 1.0
            assert picks == ["n"]
    finally:
        jupyter.stop()


@dataclasses.dataclass
class _Jupyter:
    process: subprocess.Popen[bytes]
    port: int
    token: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def _start_jupyter(tmp_path: Path) -> _Jupyter:
    pytest.importorskip("jupyter_server_proxy")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(8)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    log = tmp_path / "jupyter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--allow-root",
             "--ServerApp.allow_remote_access=True", "--ServerApp.base_url=/user/ana/", f"--ServerApp.root_dir={tmp_path}"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    jupyter = _Jupyter(process, port, token, log)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"jupyter server exited:\n{jupyter.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/user/ana/api/status?token={token}", timeout=2):
                return True
        except OSError:
            return False

    if not _wait(answers, 60):
        jupyter.stop()
        raise AssertionError(f"jupyter server did not answer:\n{jupyter.log_tail()}")
    return jupyter


# -- issue 12: the overlay channel (numbers on Netron's drawing) ------------------------------------

def test_the_page_loads_the_overlay_script_from_its_own_folder(mlp_onnx: Path) -> None:
    page = render_index("m.onnx")
    assert page.index('src="workbench-offline.js"') < page.index('src="workbench-overlay.js"')
    script = (Path(__file__).parents[2] / "workbench/widgets/netron/overlay.js").read_text()
    assert "innerHTML" not in script and "eval(" not in script  # model strings only as text
    assert "'node-name-'" in script and "MutationObserver" in script and "wb-overlay.json" in script
    with NetronServer(mlp_onnx) as server:
        status, body, headers = _get(server.url + "workbench-overlay.js")
        assert status == 200 and body == script.encode() and headers["Content-Type"] == "text/javascript"
        assert f"script-src {server.url};" in headers["Content-Security-Policy"]  # its own folder only
        status, body, _ = _get(server.url + "wb-overlay.json")
        assert status == 200 and json.loads(body) == {"revision": 0, "overlay": None, "select": None}


def test_the_overlay_channel_paints_serves_and_reports_picks(mlp_onnx: Path) -> None:
    from workbench.widgets.netron.overlay import CATEGORICAL, SEQUENTIAL, paint

    view = NetronView(mlp_onnx)
    try:
        overlay = {"metric": "error", "kind": "sequential", "unit": "rel", "nodes": {
            "a": {"value": 1e-7, "label": "1e-07", "title": "a (MatMul)\nmodule: fc1"},
            "b": {"value": 1e-2, "label": "0.01", "title": "b"}, "c": {"value": float("nan")}},
            "legend": {"min": 1e-7, "max": 1e-2, "scale": "log"}}
        revision = view.set_overlay(overlay)
        status, body, _ = _get(view.server.url + "wb-overlay.json")
        state = json.loads(body)  # valid JSON: the NaN became null
        assert state["revision"] == revision and state["overlay"]["nodes"]["c"]["value"] is None
        # the page polls with the revision it has: nothing new is a few bytes
        assert json.loads(_get(view.server.url + f"wb-overlay.json?since={revision}")[1]) == {"revision": revision}
        nodes = state["overlay"]["nodes"]
        assert (nodes["a"]["color"], nodes["b"]["color"]) == (SEQUENTIAL[0], SEQUENTIAL[-1])
        assert "log scale" in state["overlay"]["scale"][-1]["label"]
        view.select_node("b")
        assert json.loads(_get(view.server.url + "wb-overlay.json")[1])["select"] == {"name": "b", "seq": 1}
        status, _, _ = _get(view.server.url + "wb-pick?name=" + urllib.parse.quote("a/b c"))
        assert status == 204 and view.picked_node == "a/b c"
        view.set_overlay(None)
        assert json.loads(_get(view.server.url + "wb-overlay.json")[1])["overlay"] is None
    finally:
        view.close()
    categorical = paint({"metric": "precision", "kind": "categorical", "unit": "", "nodes": {
        "q": {"value": "int8"}, "f": {"value": "fp32"}, "h": {"value": "bf16"}},
        "legend": {"categories": [{"name": "fp32", "color": "#4C78A8", "count": 1},
                                  {"name": "int8", "color": "#E45756", "count": 1}]}})
    assert categorical["nodes"]["q"]["color"] == "#E45756" and categorical["nodes"]["f"]["color"] == "#4C78A8"
    assert categorical["nodes"]["h"]["color"] in CATEGORICAL  # a category core gave no colour for
    assert [s["label"] for s in categorical["scale"]] == ["fp32 (1)", "int8 (1)", "bf16 (1)"]
    # a linear suggestion, but one node 1000x slower than the rest: log, or every other node looks the same
    latency = paint({"metric": "latency", "kind": "sequential", "unit": "ms", "legend": {"scale": "linear"},
                     "nodes": {"slow": {"value": 20.0}, "x": {"value": 0.02}, "y": {"value": 0.2}}})
    assert len({n["color"] for n in latency["nodes"].values()}) == 3
