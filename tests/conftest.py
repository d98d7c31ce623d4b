"""Shared fixtures: tiny zoo models exported once per test session."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch

import workbench as wb

torch.manual_seed(0)
ARTIFACTS = Path(os.environ.get("WB_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The per-user cache folder ($XDG_CACHE_HOME/onnx-workbench) of this test session, not the user's own."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def export_zoo(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., wb.ExportResult]:
    """export_zoo(name, exporter='dynamo', batch=2) -> ExportResult of the smoke zoo case (cached per session)."""
    root = tmp_path_factory.mktemp("exports")
    done: dict[tuple[str, str, int], wb.ExportResult] = {}

    def _export(name: str, exporter: str = "dynamo", batch: int = 2) -> wb.ExportResult:
        key = (name, exporter, batch)
        if key not in done:
            zm = wb.zoo.get(name, smoke=True)
            spec = zm.spec if exporter == "dynamo" else zm.spec.replace(exporter="torchscript", opset=17)
            done[key] = wb.export(zm.model, zm.make_inputs(batch=batch), root / f"{name}_{exporter}_b{batch}.onnx",
                                  spec=spec)
        return done[key]

    return _export


@pytest.fixture(scope="session")
def tc_smoke() -> wb.ModelCase:
    return wb.zoo.get("text_classifier", smoke=True)


@pytest.fixture(scope="session")
def mlp() -> wb.ModelCase:
    return wb.zoo.get("mlp", smoke=True)


def _torch_export(zm: wb.ModelCase, exporter: str, path: Path) -> Path:
    """Plain ``torch.onnx.export`` of a zoo model, for tests of modules that must not depend on wb.export."""
    spec = zm.spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dims = {s: torch.export.Dim(s, min=1, max=512) for axes in spec.dynamic_axes.values() for s in axes.values()}
            shapes = {n: {d: dims[s] for d, s in spec.dynamic_axes.get(n, {}).items()} for n in spec.input_names}
            torch.onnx.export(zm.model, zm.example_inputs, str(path), dynamo=True, input_names=list(spec.input_names),
                              output_names=list(spec.output_names), dynamic_shapes=shapes, verbose=False)
        else:
            torch.onnx.export(zm.model, zm.example_inputs, str(path), dynamo=False, input_names=list(spec.input_names),
                              output_names=list(spec.output_names), dynamic_axes=spec.dynamic_axes, opset_version=17)
    return path


@pytest.fixture(scope="session")
def torch_export(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """torch_export(name, exporter='torchscript') -> path of the smoke zoo model exported by torch.onnx (once per session)."""
    folder = tmp_path_factory.mktemp("torch-exports")

    def _export(name: str, exporter: str = "torchscript") -> Path:
        path = folder / f"{name}-{exporter}.onnx"
        return path if path.exists() else _torch_export(wb.zoo.get(name, smoke=True), exporter, path)

    return _export
