"""The doctor's finding codes: stable identifiers, what each means, the usual fix, the retry and the
stage of the doctor's attempt the evidence comes from.

Codes never change meaning once published; new problems get new codes. ``CODES.md`` beside
this module is generated from this table (``codes_markdown()``) and a test keeps them equal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeInfo:
    """One finding code: its category, a title, what it means, the usual fix, the automatic retry and the
    stage its evidence comes from (``setup``: checks before the export; then the attempt's stages
    export, summarize, session, compare, values, probe)."""

    code: str
    category: str
    title: str
    meaning: str
    fix: str
    retry: str = ""
    stage: str = ""


_TABLE: tuple[CodeInfo, ...] = (
    # ------------------------------------------------------------------ dynamic shapes
    CodeInfo("DYN001", "dynamic shapes", "A size-1 example axis was specialized",
             "An axis declared dynamic has size 0 or 1 in the example; the exporter treats such sizes as "
             "constants, so the graph only accepts that size.",
             "Export from an example whose dynamic axes are >= 2.",
             "re-export from an example resized to 2 on those axes",
             stage="probe"),
    CodeInfo("DYN002", "dynamic shapes", "A shape was baked into the graph by tracing",
             "The graph declares the axis dynamic but a node (often a Reshape fed by constants) holds the "
             "example's size, so other sizes fail or are wrong.",
             "Use the dynamo exporter (torch.export tracks shapes symbolically), or compute shapes with "
             "tensor ops (x.shape[0] kept symbolic) rather than Python ints.",
             "re-export with the other exporter from an example with dynamic axes >= 2",
             stage="probe"),
    CodeInfo("DYN003", "dynamic shapes", "A dynamic_axes key names no input or output",
             "dynamic_axes refers to a name the graph does not have, so that axis would be exported static.",
             "Rename the key to the input or output name it was meant for.",
             "re-export with the key renamed",
             stage="setup"),
    CodeInfo("DYN004", "dynamic shapes", "An axis declared dynamic is fixed by the model",
             "The model only works at one size on this axis (e.g. input channels fixed by Conv weights), "
             "so the exported graph keeps it static or other sizes fail in PyTorch too.",
             "Drop that axis from dynamic_axes.",
             "re-export without that axis",
             stage="export, probe"),
    CodeInfo("DYN005", "dynamic shapes", "Shape-dependent control flow was frozen at export",
             "The graph computes a different function at some sizes of a dynamic axis: a Python branch on a "
             "size took one side at the example size and was recorded without its condition.",
             "Make the code independent of the size, use torch.cond, or export from a size on the "
             "side of the branch that deployment uses and keep inputs there.",
             stage="probe"),
    CodeInfo("DYN006", "dynamic shapes", "The graph fails at other sizes of its dynamic axes",
             "The probe stage (other sizes of the dynamic axes) fails or disagrees with PyTorch, for a reason "
             "the doctor could not narrow down.",
             "Read the probe messages (evidence probe_message); try the other exporter.",
             "re-export with the other exporter",
             stage="probe"),
    # ------------------------------------------------------------------ data-dependent
    CodeInfo("DATA001", "data-dependent", "A branch on tensor values was traced away",
             "Python control flow on a tensor's value (if x.sum() > 0) ran once during tracing; the "
             "TorchScript exporter kept only the branch taken for the example.",
             "Express the branch as tensor ops (torch.where) or torch.cond, then export.",
             "export with the dynamo exporter (which refuses such branches instead of hiding them)",
             stage="values"),
    CodeInfo("DATA002", "data-dependent", "torch.export refuses a branch on tensor values",
             "torch.export cannot guard on a value it only knows at run time (GuardOnDataDependentSymNode).",
             "Rewrite the branch with torch.where or torch.cond.",
             "export with the TorchScript exporter (which traces one branch and is checked on other values)",
             stage="export"),
    CodeInfo("DATA003", "data-dependent", "A tensor value was turned into a Python number",
             ".item(), int(tensor), .tolist() or a tensor used as an index turned a value into a Python "
             "constant, used for a shape, a slice or a constant; the trace froze it.",
             "Keep the value a tensor (index with tensors, torch.narrow with symbolic sizes) or use the "
             "dynamo exporter, which records it as a data-dependent size.",
             "export with the other exporter",
             stage="export, values"),
    CodeInfo("DATA004", "data-dependent", "The export matches on the example only",
             "PyTorch and ONNX Runtime agree on the example (compare stage) but not on inputs with other "
             "values (values stage).",
             "Look at the first divergent node and its module for value-dependent code.",
             "export with the other exporter",
             stage="values"),
    # ------------------------------------------------------------------ operators
    CodeInfo("OP001", "operators", "An operator has no ONNX translation",
             "The exporter has no translation for an operator the model calls.",
             "Use the other exporter; rewrite with supported ops (a decomposition); register a symbolic "
             "function (TorchScript exporter) or an onnxscript custom_translation_table entry (dynamo), "
             "or emit a custom-domain op with an ONNX Runtime custom kernel.",
             "export with the other exporter",
             stage="export"),
    CodeInfo("OP002", "operators", "The opset is too old for an operator",
             "The operator exists in ONNX only from a newer opset than the one requested.",
             "Export with the opset the message names (or newer).",
             "re-export at the required opset",
             stage="export"),
    CodeInfo("OP003", "operators", "A custom autograd Function cannot be exported",
             "A torch.autograd.Function's forward leaves torch (numpy, C++ code) so it cannot be traced, "
             "or was traced into constants.",
             "Give it a symbolic() staticmethod (TorchScript exporter), or register it as a torch.library "
             "custom op with an onnxscript translation (dynamo exporter, custom_translation_table).",
             "export with the other exporter",
             stage="export, values"),
    CodeInfo("OP004", "operators", "A custom-domain op has no ONNX Runtime kernel",
             "The graph holds an op from a custom domain that ONNX Runtime does not implement, so the "
             "session cannot be built.",
             "Register the kernel library (SessionOptions.register_custom_ops_library) or export a "
             "decomposition into standard ops.",
             "export with the other exporter",
             stage="session"),
    # ------------------------------------------------------------------ numerics
    CodeInfo("NUM001", "numerics", "Training mode left on",
             "The model is in training mode: dropout is random and batch-norm uses batch statistics.",
             "Call model.eval() before exporting and comparing.",
             "export and compare in eval mode",
             stage="setup"),
    CodeInfo("NUM002", "numerics", "Half precision compared at fp32 tolerance",
             "The model or graph computes in float16; fp32 tolerances are tighter than float16 rounding.",
             "Compare with tolerance='fp16'.",
             "compare at the fp16 tolerance",
             stage="compare"),
    CodeInfo("NUM003", "numerics", "An ONNX Runtime graph optimization changes the results",
             "The unoptimized graph matches PyTorch but a graph optimization (named) moves outputs beyond tolerance.",
             "wb.SessionConfig(disabled_optimizers=(name,)) with the optimizer the evidence names, or "
             "opt_level set to the last level that matched.",
             "run with that optimizer disabled",
             stage="compare"),
    CodeInfo("NUM004", "numerics", "The ONNX graph diverges from PyTorch",
             "Even unoptimized, the graph's outputs differ from PyTorch; the first divergent node and its "
             "module show where (e.g. a symbolic or translation that computes something else).",
             "Fix the translation of that module (its symbolic, or custom_translation_table entry).",
             "export with the other exporter",
             stage="compare"),
    CodeInfo("NUM005", "numerics", "PyTorch's fast path computes something else",
             "In inference, nn.TransformerEncoder / nn.MultiheadAttention take a fast path (nested tensors) that "
             "returns zeros at padded positions; the exported graph, like PyTorch's regular path, computes them.",
             "Compare with torch.backends.mha.set_fastpath_enabled(False), or ignore padded positions "
             "(they are masked downstream); enable_nested_tensor=False keeps PyTorch on the regular path.",
             "compare with PyTorch's fast path disabled",
             stage="compare"),
    # ------------------------------------------------------------------ providers and devices
    CodeInfo("EP001", "providers", "Unknown execution provider name",
             "ONNX Runtime does not know the provider name (a misspelling); it would print a line and run on CPU.",
             "Use the exact name, e.g. 'CUDAExecutionProvider'.",
             "run with the corrected name (restricted to providers available here)",
             stage="setup"),
    CodeInfo("EP002", "providers", "Provider not available: silent CPU fallback",
             "The provider is a real one but this onnxruntime build lacks it; the session runs on CPU.",
             "Install the build that has it (onnxruntime-gpu for CUDA/TensorRT), or ask for CPU explicitly.",
             "run with the providers available here",
             stage="setup"),
    CodeInfo("EP003", "providers", "Nodes on CPU next to a GPU provider, with Memcpy",
             "Some nodes have no kernel on the GPU provider; they run on CPU and ONNX Runtime inserts "
             "Memcpy nodes to move tensors back and forth.",
             "Replace those ops, move that pre/post-processing out of the graph, or check a newer opset; "
             "wb.placement(onnx_model, inputs, config=config) shows where each node runs.",
             stage="session"),
    CodeInfo("DEV001", "device", "Model and example inputs on different devices",
             "The model's parameters and the example inputs live on different devices, so PyTorch cannot run it.",
             "Move the inputs to the model's device (tensor.to(device)) or the model to theirs.",
             "move the inputs to the model's device",
             stage="setup"),
    # ------------------------------------------------------------------ other stages
    CodeInfo("TORCH001", "export", "The model fails in PyTorch on its example",
             "PyTorch itself raises on the example inputs, so there is nothing to export.",
             "Pass example inputs the forward accepts (count, shapes, dtypes).",
             stage="export"),
    CodeInfo("EXP001", "export", "The export failed",
             "The exporter raised for a reason none of the other codes covers.",
             "Read the signature; try the other exporter.",
             "export with the other exporter",
             stage="export"),
    CodeInfo("EXP002", "export", "A view of a non-contiguous tensor with symbolic sizes",
             "The model reshapes (view/reshape) a tensor that a transpose or permute left non-contiguous. Eagerly "
             "reshape copies when it must; with symbolic sizes the exporter cannot prove a view is possible and "
             "the translation stops (\"Cannot view a tensor with shape ... and strides ...\").",
             "Make the tensor contiguous before the reshape at the line shown (x.contiguous().view(...)), or use "
             "the TorchScript exporter, or export that axis static.",
             "export with the TorchScript exporter; then with the axis static",
             stage="export"),
    CodeInfo("EXP003", "export", "A decomposition fails during the export",
             "torch.export captured the model, but decomposing an operator into the ones ONNX translates failed "
             "(\"Failed to decompose the FX graph\") for a reason other than a view.",
             "Try the TorchScript exporter or another opset; rewrite the operator at the line shown with simpler ops.",
             "export with the other exporter; then at another opset",
             stage="export"),
    # ------------------------------------------------------------------ outputs
    CodeInfo("OUT001", "outputs", "The model returns a non-tensor object",
             "forward returns something that is not a tensor (a transformers cache object such as DynamicCache, "
             "returned with use_cache=True, the default for decoders; or a custom class). PyTorch runs fine; "
             "ONNX outputs can only be tensors, so the outputs cannot be flattened and exported.",
             "Export without the cache (model.config.use_cache = False, or use_cache=False in the call), or wrap the "
             "model so forward returns tensors only (return out.logits).",
             "re-export with use_cache=False; then with a wrapper returning the tensors only",
             stage="export"),
    CodeInfo("OUT002", "outputs", "output_names does not match the model's outputs",
             "output_names has another count than the tensors the model returns (a ModelOutput flattens to every "
             "field that is not None, e.g. last_hidden_state and pooler_output).",
             "Give one name per returned tensor (the evidence suggests names from the output's fields), or "
             "return only the tensors you name.",
             "re-export with one name per returned tensor",
             stage="export"),
    CodeInfo("DATA005", "data-dependent", "A data-dependent size reaches a shape or a branch",
             "A size only known at run time (an unbacked symbol u0 from nonzero, .item() or masked indexing, often "
             "inside library code the model calls) decides a shape or a branch; torch.export cannot guard on it.",
             "At the line shown, keep the size static (pad to a fixed length), bound it with "
             "torch._check(u >= 0) / torch._check(u <= n), or compute with masks instead of indexing.",
             "export with the TorchScript exporter",
             stage="export"),
    CodeInfo("DYN007", "dynamic shapes", "Python arithmetic on sizes contradicts the dynamic range",
             "The model computes with sizes in Python (integer division, a range check, a size compared with a "
             "config value) so that a dynamic dimension can only take some values; torch.export's value-range "
             "analysis fails (\"N not in VR[a, b]\") or asks for a relation it cannot express.",
             "Change the line shown to keep the size symbolic (tensor ops, torch.sym_int arithmetic), or export the "
             "axis static.",
             "re-export with that axis static; then with the other exporter",
             stage="export"),
    CodeInfo("CHK001", "export", "The ONNX checker rejects the model",
             "The ONNX checker (onnx.checker, run by the summarize stage) finds the exported model invalid.",
             "Try the other exporter or another opset; report the exporter bug with the model.",
             "export with the other exporter",
             stage="summarize"),
    CodeInfo("ORT001", "runtime", "ONNX Runtime cannot run the model",
             "Building the session, or running it on the example (compare stage), failed for a reason none "
             "of the other codes covers.",
             "Read the signature; try another opset or the other exporter.",
             "export with the other exporter",
             stage="session, compare"),
    CodeInfo("WB001", "internal", "A doctor step failed",
             "A step of the diagnosis raised unexpectedly; the other steps still ran.",
             "Report it with the model; the evidence holds the traceback.",
             stage="any"),
)

CODES: dict[str, CodeInfo] = {c.code: c for c in _TABLE}

#: The categories in display order.
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(c.category for c in _TABLE))


def code_info(code: str) -> CodeInfo:
    """The ``CodeInfo`` of ``code``; ``KeyError`` names the known codes."""
    try:
        return CODES[code]
    except KeyError:
        raise KeyError(f"Unknown finding code {code!r}; known codes: {', '.join(CODES)}") from None


def codes_markdown() -> str:
    """The codes as the Markdown document ``CODES.md``."""
    lines = ["# Doctor finding codes", "",
             "Generated from `workbench/doctor/codes.py` (`codes_markdown()`); codes are stable.", "",
             "`wb.diagnose(model, example_inputs, spec=..., config=..., tolerance=...)` runs one attempt: the "
             "stages export, summarize (with the ONNX checker), session, compare (on the example), values "
             "(on inputs with other values) and probe (other sizes of the dynamic axes), after the setup checks "
             "that need no export. The stage column says where a code's evidence comes from.", ""]
    for category in CATEGORIES:
        lines += [f"## {category}", "", "| code | stage | title | meaning | fix | automatic retry |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for c in _TABLE:
            if c.category == category:
                cells = [c.code, c.stage, c.title, c.meaning, c.fix, c.retry or "none (needs a code change)"]
                lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
        lines.append("")
    return "\n".join(lines)
