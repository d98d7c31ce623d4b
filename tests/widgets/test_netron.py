"""The per-model Netron server and its widget: what is served, what is refused, and when it stops."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import onnx
import pytest

from workbench.widgets.netron import (
    NetronServer,
    NetronView,
    live_servers,
    render_index,
)
from workbench.widgets.netron.server import CSP


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
