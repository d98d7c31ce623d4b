"""Rules that need no export: devices, training mode, provider names, dynamic_axes keys."""

from __future__ import annotations

import difflib

import onnxruntime as ort
import torch
from torch import nn

from workbench.core.export import check_spec
from workbench.doctor.attempt import Setting, eval_mode
from workbench.doctor.findings import Finding, Retry

# Modules whose output depends on train/eval mode.
_MODE_SENSITIVE = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.AlphaDropout,
                   nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def _materialize(t: torch.Tensor, device: torch.device, seed: int) -> torch.Tensor:
    if not t.is_meta:
        return t.to(device)
    gen = torch.Generator().manual_seed(seed)
    if t.dtype.is_floating_point:
        return torch.randn(tuple(t.shape), generator=gen).to(dtype=t.dtype, device=device)
    if t.dtype == torch.bool:
        return torch.ones(tuple(t.shape), dtype=torch.bool, device=device)
    return torch.zeros(tuple(t.shape), dtype=t.dtype, device=device)


def device_findings(setting: Setting) -> list[Finding]:
    """DEV001: the example inputs are not on the device of the model's parameters and buffers."""
    model, names = setting.model, list(setting.case.input_names)
    tensors = list(model.parameters()) + list(model.buffers())
    model_devices = sorted({str(t.device) for t in tensors})
    if not model_devices:
        return []
    target = torch.device(model_devices[0])
    inputs = {names[i] if i < len(names) else f"input_{i}": str(t.device) for i, t in enumerate(setting.example_inputs)}
    off = {n: d for n, d in inputs.items() if d not in model_devices}
    if not off and len(model_devices) == 1:
        return []
    evidence = {"model_device": ", ".join(model_devices), "input_devices": inputs, "inputs_elsewhere": sorted(off)}
    if len(model_devices) > 1:
        return [Finding("DEV001", "The model's parameters are on several devices",
                        f"Parameters and buffers live on {model_devices}; the exporters need one device.",
                        evidence, f"model.to({model_devices[0]!r}) before exporting, and inputs on the same device.")]
    moved = tuple(_materialize(t, target, i) for i, t in enumerate(setting.example_inputs))
    meta = [n for n, d in inputs.items() if d == "meta"]
    note = (f" ({', '.join(meta)} on 'meta' hold no values; the retry used random values of the same shape and dtype)"
            if meta else "")
    action = f"move the example inputs to {target}{note}"
    return [Finding(
        "DEV001", "Model and example inputs on different devices",
        f"The model is on {model_devices[0]} but {', '.join(f'{n!r} is on {off[n]}' for n in sorted(off))}; "
        "PyTorch cannot run the forward, so nothing can be exported or compared.",
        evidence,
        f"example_inputs = tuple(t.to({str(target)!r}) for t in example_inputs)\n"
        f"# or move the model: model.to(device_of_inputs)",
        Retry(action, {"inputs_device": str(target)}, settings=[(action, setting.replace(example_inputs=moved))]),
    )]


def training_findings(setting: Setting) -> list[Finding]:
    """NUM001: the model (or a submodule) is in training mode."""
    model = setting.model
    if setting.eval_mode:
        return []
    training = [name or "<root>" for name, m in model.named_modules() if m.training]
    if not training:
        return []
    sensitive = [name or "<root>" for name, m in model.named_modules()
                 if m.training and isinstance(m, _MODE_SENSITIVE)]
    cause = ("The model is in training mode" if model.training else f"{len(training)} submodule(s) are in training mode")
    if sensitive:
        cause += f": {', '.join(sensitive[:5])} behave differently in training (random dropout, batch statistics)"
    cause += ", so exported and PyTorch outputs would not be inference outputs; the exporter refuses it."
    action = "export and compare with model.eval()"
    return [Finding(
        "NUM001", "Training mode left on", cause,
        {"module": sensitive[0] if sensitive else training[0], "training_modules": training[:10],
         "mode_sensitive": sensitive[:10]},
        "model.eval()  # before wb.export / wb.compare; model.train() again to keep training",
        Retry(action, {"eval": True}, settings=[(action, setting.replace(eval_mode=True))]),
    )]


def _suggest(name: str, choices: list[str], inputs: list[str] | None = None,
             outputs: list[str] | None = None) -> str | None:
    """The choice ``name`` most likely meant: same letters in another case, a close spelling, or the
    only input (output) when ``name`` says 'input' ('output')."""
    lower = {c.lower(): c for c in choices}
    if name.lower() in lower:
        return lower[name.lower()]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if close:
        return close[0]
    key = name.lower()
    for words, group in ((("input", "in", "x", "src"), inputs), (("output", "out", "y", "logits"), outputs)):
        if group and len(group) == 1 and any(key == w or key.startswith(w) for w in words):
            return group[0]
    return None


def provider_findings(setting: Setting) -> list[Finding]:
    """EP001 for provider names ONNX Runtime does not know, EP002 for known but unavailable ones."""
    known = ort.get_all_providers()
    available = ort.get_available_providers()
    requested = list(setting.config.providers)
    out: list[Finding] = []
    unknown = [p for p in requested if p not in known]
    fixed = [(_suggest(p, known) or p) if p in unknown else p for p in requested]
    if unknown:
        usable = tuple(dict.fromkeys(p for p in fixed if p in available)) or ("CPUExecutionProvider",)
        spelled = {p: _suggest(p, known) for p in unknown}
        gone = [s for s in spelled.values() if s and s not in available]
        action = f"use the spelling {[s or p for p, s in spelled.items()]}" + (
            f"; {gone} not available in this build, so the retry ran with {list(usable)}" if gone else "")
        out.append(Finding(
            "EP001", "Unknown execution provider name",
            f"ONNX Runtime knows no provider {', '.join(repr(p) for p in unknown)}; it would print a warning and run "
            "on CPU instead, which is easy to miss.",
            {"provider": unknown[0], "requested": requested, "suggestion": spelled[unknown[0]],
             "known": [p for p in known if "CPU" in p or "CUDA" in p or "Tensorrt" in p]},
            f"SessionConfig(providers={tuple(s or p for p, s in zip(requested, fixed))!r})",
            Retry(action, {"providers": list(usable)},
                  settings=[(action, setting.replace(config=setting.config.replace(providers=usable)))]),
        ))
    missing = [p for p in fixed if p in known and p not in available]
    if missing and not unknown:
        usable = tuple(p for p in requested if p in available) or ("CPUExecutionProvider",)
        action = f"run with the providers available here {list(usable)} (the fix for GPU is to install the build that has it)"
        gpu = any(k in " ".join(missing) for k in ("CUDA", "Tensorrt", "ROCM", "Dml"))
        out.append(Finding(
            "EP002", "Provider not available: silent CPU fallback",
            f"{', '.join(missing)} is a real provider but this onnxruntime build ({ort.__version__}) lacks it; "
            f"the session would run on {', '.join(usable)} without saying so.",
            {"provider": missing[0], "requested": requested, "available": available},
            ("pip install onnxruntime-gpu  # instead of onnxruntime (the two conflict), on a machine with CUDA"
             if gpu else f"install an onnxruntime build with {missing[0]}")
            + f"\n# or ask for what is there: SessionConfig(providers={usable!r})",
            Retry(action, {"providers": list(usable)},
                  settings=[(action, setting.replace(config=setting.config.replace(providers=usable)))]),
        ))
    return out


def axes_key_findings(setting: Setting) -> list[Finding]:
    """DYN003: ``dynamic_axes`` keys that are neither an input nor an output name."""
    spec = setting.spec
    if spec is None or not spec.dynamic_axes:
        return []
    try:
        with eval_mode(setting.model, True):
            names_spec = check_spec(setting.model, setting.example_inputs, spec=spec.replace(dynamic_axes={}))
    except Exception:  # other rules report why the model cannot be checked
        return []
    names = list(names_spec.input_names) + list(names_spec.output_names)
    unknown = [k for k in spec.dynamic_axes if k not in names]
    if not unknown:
        return []
    renames = {k: _suggest(k, names, list(names_spec.input_names), list(names_spec.output_names))
               for k in unknown}
    axes = {}
    for key, dims in spec.dynamic_axes.items():
        new = renames.get(key, key) if key in renames else key
        if new and new not in axes:
            axes[new] = dims
    fixed = spec.replace(dynamic_axes=axes)
    key = unknown[0]
    hint = f" (did you mean {renames[key]!r}?)" if renames[key] else ""
    action = "rename " + ", ".join(f"{k!r} -> {v!r}" if v else f"drop {k!r}" for k, v in renames.items())
    return [Finding(
        "DYN003", "A dynamic_axes key names no input or output",
        f"dynamic_axes has the key {key!r}{hint}, but the graph's inputs are {list(names_spec.input_names)} and "
        f"its outputs {list(names_spec.output_names)}: that axis would be exported static.",
        {"key": key, "suggestion": renames[key], "inputs": list(names_spec.input_names),
         "outputs": list(names_spec.output_names)},
        f"dynamic_axes={axes!r}",
        Retry(action, {"dynamic_axes": axes}, settings=[(action, setting.replace(spec=fixed))]),
    )]
