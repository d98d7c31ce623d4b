"""What an export said: its warnings, what torch printed, and the checks ``wb.export`` adds.

Split out of ``export.py``. The TorchScript exporter's deprecation warning (torch warns since 2.9)
is kept, not filtered: the user chose a deprecated exporter and should see so in
``ExportResult.warnings``.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import onnx

from workbench.core._locks import SharedOverride
from workbench.core.spec import DYNAMO_BASE_OPSET, ExportSpec

# Warnings torch raises about its own internals, not about the user's model. ("The feature will be
# removed" is the generic twin of the TorchScript deprecation warning, which is kept.)
INTERNAL_NOISE = ("torchvision", "LeafSpec", "The feature will be removed. Please remove usage of this function")


def first_lines(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[:n]) + (" [...]" if len(lines) > n else "")


def unique_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen and not any(noise in text for noise in INTERNAL_NOISE):
            seen.append(text)
    return seen


_PRINTED_WARNING = re.compile(r"^\[W\b|\bwarning\b", re.IGNORECASE)


def printed_warnings(text: str, limit: int = 20) -> list[str]:
    """The warnings torch's C++ code printed (``[W shape_type_inference.cpp:...] Warning: ...``)."""
    seen: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and _PRINTED_WARNING.search(line) and line not in seen \
                and not any(noise in line for noise in INTERNAL_NOISE):
            seen.append(line[:500])
    return seen[:limit]


def opset_warnings(path: Path, spec: ExportSpec) -> list[str]:
    """A warning when the file's default-domain opset is not the one asked for: the dynamo exporter
    translates at opset 18 and converts lower requests down, keeping 18 where an op has no older form."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # the caller reports unreadable files
        return []
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if written is None or written == spec.opset:
        return []
    why = (f" The dynamo exporter translates at opset {DYNAMO_BASE_OPSET} or newer and converts lower requests "
           "down with onnx's version converter, which keeps the newer opset when an op has no older form."
           if spec.exporter == "dynamo" and spec.opset < DYNAMO_BASE_OPSET else "")
    return [f"OpsetWarning: asked for opset {spec.opset}, the file has opset {written}.{why} "
            f"Use opset={written} or newer, or exporter='torchscript' for an older file."]


_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes", "onnxscript")


def _set_levels(levels: int | dict[str, int]) -> None:
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(levels[name] if isinstance(levels, dict) else levels)


#: Silences torch.onnx's chatty loggers (e.g. 'torchvision is not installed') during exports; the first
#: export to start saves the levels, the last one to finish restores them.
QUIET_LOGS = SharedOverride(lambda: {n: logging.getLogger(n).level for n in _LOGGERS}, _set_levels)
