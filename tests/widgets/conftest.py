"""Fixtures of the widget tests (no browser): tiny models exported once, and a check that every
panel's background work ends before a test does."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import workbench as wb
from workbench.widgets.netron import live_servers

WAIT_S = 60


@pytest.fixture(scope="session")
def mlp_onnx(export_zoo: Any) -> Path:
    """The smoke MLP exported with the torchscript exporter (fast), batch dynamic."""
    return Path(export_zoo("mlp", "torchscript").out)


@pytest.fixture
def mlp_spec(mlp: wb.ModelCase) -> wb.ExportSpec:
    return mlp.spec.replace(exporter="torchscript", opset=17)


@pytest.fixture(autouse=True)
def _no_leaked_servers() -> Iterator[None]:
    before = set(map(id, live_servers()))
    yield
    leaked = [s for s in live_servers() if id(s) not in before]
    for server in leaked:
        server.stop()
    assert not leaked, f"Netron servers left running: {leaked}"
