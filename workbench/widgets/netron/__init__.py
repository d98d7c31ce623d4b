"""``NetronView``: Netron drawing one ONNX file inside the notebook, served by the kernel.

    >>> from workbench.widgets.netron import NetronView
    >>> NetronView("model.onnx")   # onnx_model: the ONNX file drawn

The kernel serves Netron's front end (from the ``netron`` package) on 127.0.0.1 for this one
model (see ``server.py``); the browser shows it through the Jupyter server (jupyter-server-proxy)
or directly, whichever reaches it (see ``index.js``). The server stops on ``close()``, when the
widget is garbage collected, and when the kernel exits; a closed view serves nothing again.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any, Iterable

import anywidget
import traitlets

from workbench.widgets._traits import OnnxFile
from workbench.widgets.netron.overlay import OverlayChannel
from workbench.widgets.netron.page import netron_version, render_index
from workbench.widgets.netron.server import NetronServer, live_servers, stop_all

__all__ = ["NetronServer", "NetronView", "OverlayChannel", "live_servers", "render_index", "stop_all"]


class NetronView(anywidget.AnyWidget):
    """An iframe with Netron's drawing of ``onnx_model``; ``onnx_model=''`` shows ``message`` instead."""

    # The text, not the Path: anywidget watches a Path's file and its change signal holds every
    # instance for good, so a view was never garbage collected (and never stopped its server).
    _esm = Path(__file__).with_name("index.js").read_text(encoding="utf-8")

    onnx_model = OnnxFile("", help="The ONNX file drawn; '' for none. Changing it serves the new file.")
    port = traitlets.Int(0, help="Port of the kernel's Netron server on 127.0.0.1 (0: not serving).").tag(sync=True)
    token = traitlets.Unicode("", help="The random path prefix the server answers under.").tag(sync=True)
    revision = traitlets.Int(0, help="Bumped by reload() to redraw the same file.").tag(sync=True)
    route = traitlets.Enum(["auto", "proxy", "direct"], "auto",
                           help="How the browser reaches the server: auto, or force one route.").tag(sync=True)
    route_used = traitlets.Unicode("", help="Set by the browser: 'proxy', 'direct' or 'unreachable'.").tag(sync=True)
    height = traitlets.Int(560, help="Height of the frame in pixels.").tag(sync=True)
    message = traitlets.Unicode("Export a model to see its graph.", help="Shown while there is no model.").tag(sync=True)
    model_name = traitlets.Unicode("").tag(sync=True)
    netron_version = traitlets.Unicode("").tag(sync=True)
    picked_node = traitlets.Unicode("", help="The node last clicked in Netron (set from the page, via the server).")

    def __init__(self, onnx_model: str | Path = "", *, extra_files: Iterable[str] = (), **kwargs: Any) -> None:
        self._server: NetronServer | None = None
        self._extra_files = tuple(extra_files)
        self._finalizer: weakref.finalize | None = None
        self._closed = False
        self._serving = threading.Lock()  # close() on the main thread vs. show() from a panel's worker
        # The overlay and the picks outlive each server (a new file starts a new one); weak: no cycle.
        self_ref = weakref.ref(self)
        self.channel = OverlayChannel(on_pick=lambda name: _picked(self_ref, name))
        super().__init__(netron_version=netron_version(), **kwargs)
        self.onnx_model = onnx_model

    @property
    def server(self) -> NetronServer | None:
        """The running server, or ``None``."""
        return self._server

    def show(self, onnx_model: str | Path, *, extra_files: Iterable[str] = ()) -> None:
        """Serve and draw ``onnx_model`` (again, if it is the same file: e.g. after a re-export)."""
        self._extra_files = tuple(extra_files)
        if str(onnx_model) == self.onnx_model:
            self._serve(self.onnx_model)
        else:
            self.onnx_model = onnx_model

    def set_overlay(self, overlay: dict[str, Any] | None) -> int:
        """Draw ``overlay`` (``NodeStats.overlay(metric)``) on the graph; ``None`` clears it. The page
        picks it up within a quarter second (it polls its server). Returns the channel's revision."""
        return self.channel.set_overlay(overlay)

    def select_node(self, name: str | None) -> int:
        """Select node ``name`` in Netron and scroll it to the middle of the view."""
        return self.channel.select(name)

    def reload(self) -> None:
        """Redraw the current file (its content may have changed on disk)."""
        if self.onnx_model:
            self.revision += 1

    @traitlets.observe("onnx_model")
    def _serve_the_new_file(self, change: dict[str, Any]) -> None:
        self._serve(change["new"])

    def _serve(self, onnx_model: str) -> None:
        with self._serving:
            self._stop_server()
            if self._closed:
                return
            if not onnx_model:
                self.set_trait("port", 0)
                self.model_name = ""
                return
            server = NetronServer(onnx_model, extra_files=self._extra_files, channel=self.channel).start()
            self._server = server
            self._finalizer = weakref.finalize(self, server.stop)
        with self.hold_sync():
            self.model_name = Path(onnx_model).name
            self.token = server.token
            self.port = server.port
            self.revision += 1

    def _stop_server(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # stops the server once
            self._finalizer = None
        self._server = None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the server and close the widget; it serves nothing afterwards."""
        with self._serving:
            self._closed = True
            self._stop_server()
        super().close()

    def __repr__(self) -> str:
        state = f"port {self.port}" if self._server is not None else "not serving"
        return f"NetronView({self.onnx_model!r}, {state})"


def _picked(view_ref: weakref.ref[NetronView], name: str) -> None:
    view = view_ref()
    if view is not None and not view.closed:
        view.picked_node = name
