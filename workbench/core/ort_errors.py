"""ONNX Runtime's (and onnx's) exceptions, explained: what failed, where, and what to do.

``explain_session_error(exc, onnx_model)`` (loading a model, building a session) and
``explain_run_error(exc, session, inputs)`` (``session.run``) return a ``WorkbenchError`` for the
caller to raise (or use the ``session_errors`` / ``run_errors`` context managers). The parsed
reason is data, ``error.failure`` (a ``Failure``), so refusals are grouped without matching text.
"""

from __future__ import annotations

import functools
import os
import re
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import onnx

from workbench.errors import (FeedError, InvalidInputError, ModelFileError, ProviderError, UnsupportedModelError,
                              WorkbenchError, brief)

__all__ = ["Failure", "REASONS", "SUGGESTED_OPSET", "classify_run_error", "classify_session_error",
           "explain_run_error", "explain_session_error", "run_errors", "session_errors"]

#: The opset ``convert_opset`` is offered with for old models: widely implemented (ONNX Runtime,
#: TensorRT, OpenVINO) and reachable by onnx's version converter from every older opset.
SUGGESTED_OPSET = 13
#: ONNX Runtime implements the default domain from opset 7 on; older kernels were removed.
MIN_ORT_OPSET = 7
_DEFAULT_DOMAINS = ("", "ai.onnx")
_KERNELS_DOC = "https://onnxruntime.ai/docs/reference/operators/OperatorKernels.html"
_CHECK = "Run wb.summarize(onnx_model): its checker names the node; fix the model or export it again"
_AGAIN = "Export or download the model again"

#: Reason -> the group it is reported under.
REASONS: dict[str, str] = {  # opening a model, then running it (feed ... run_failed)
    "old_opset": "old opset ONNX Runtime no longer implements", "unknown_op": "op unknown to ONNX",
    "no_kernel": "no ONNX Runtime kernel for the op's version or types",
    "unregistered_op": "op from a domain ONNX Runtime does not run (custom or training)",
    "unsupported_type": "data type ONNX Runtime does not support", "locale": "system locale missing",
    "invalid_graph": "invalid graph (types, shapes or names)", "ir_version": "IR version newer than this ONNX Runtime",
    "opset_too_new": "opset newer than this ONNX Runtime", "corrupt_file": "corrupt, truncated or not ONNX",
    "missing_file": "file missing", "external_data": "external data missing or outside the model's folder",
    "provider": "execution provider failed", "other": "other",
    "feed": "inputs do not match the graph", "numpy_dtype": "dtype ONNX Runtime's Python API cannot pass to numpy",
    "node_failed": "a node failed while running", "run_failed": "ONNX Runtime failed while running",
}


@dataclass(frozen=True)
class Failure:
    """Why ONNX Runtime (or onnx) refused a model or a run, as data."""

    reason: str
    what: str
    fix: str
    detail: str = ""
    op_type: str | None = None
    domain: str = ""
    op_version: int | None = None
    node: str | None = None
    model_opset: int | None = None
    target_opset: int | None = None

    @property
    def group(self) -> str:
        return REASONS.get(self.reason, self.reason)

    def message(self) -> str:
        return f"{self.what}. {self.fix}" + (f" (ONNX Runtime said: {self.detail})" if self.detail else "")


#: A readable model ONNX Runtime refuses.
_REFUSED: type[WorkbenchError] = UnsupportedModelError
_ERROR_CLASSES: dict[str, type[WorkbenchError]] = {
    "corrupt_file": ModelFileError, "missing_file": ModelFileError, "external_data": ModelFileError,
    "provider": ProviderError, "feed": FeedError, "numpy_dtype": FeedError, "run_failed": WorkbenchError}
_ORT_NOISE = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : |Load model from .*? failed:\s*")


def _error(failure: Failure) -> WorkbenchError:
    error = _ERROR_CLASSES.get(failure.reason, _REFUSED)(failure.message())
    error.failure = failure  # type: ignore[attr-defined]
    return error


def _detail(exc: BaseException) -> str:
    """ONNX Runtime's message, one line, without its status prefix and repeated file path."""
    return f"{type(exc).__name__}: {brief(_ORT_NOISE.sub('', str(exc)))}"


_DTYPE_NAMES = {int(v): k.lower() for k, v in onnx.TensorProto.DataType.items()}


class _Model:
    """The model an error is about, loaded lazily (without external data) for node and opset look-ups."""

    def __init__(self, onnx_model: Any) -> None:
        self.source = onnx_model
        self.is_path = isinstance(onnx_model, (str, os.PathLike))
        self.where = (f"'{os.fspath(onnx_model)}'" if self.is_path
                      else "the model bytes" if isinstance(onnx_model, bytes) else "the model")

    @functools.cached_property
    def proto(self) -> onnx.ModelProto | None:
        try:
            if isinstance(self.source, onnx.ModelProto):
                return self.source
            if isinstance(self.source, bytes):
                return onnx.load_from_string(self.source)
            return onnx.load(os.fspath(self.source), load_external_data=False) if self.is_path else None
        except Exception:  # the error being explained may be this very failure
            return None

    def opset(self, domain: str) -> int | None:
        wanted = _DEFAULT_DOMAINS if domain in _DEFAULT_DOMAINS else (domain,)
        imports = self.proto.opset_import if self.proto is not None else []
        return next((int(o.version) for o in imports if o.domain in wanted), None)

    def find_node(self, op_type: str, name: str) -> tuple[onnx.NodeProto | None, str]:
        """The first node of ``op_type`` named ``name`` and a description: ``'conv1'`` or ``#3 (unnamed)``."""
        for index, node in enumerate(self.proto.graph.node if self.proto is not None else []):
            if node.op_type == op_type and (node.name == name or not name):
                return node, f"'{node.name}'" if node.name else f"#{index} (unnamed)"
        return None, f"'{name}'" if name else "(unnamed)"

    @functools.cached_property
    def value_types(self) -> dict[str, str]:
        """Element type names of the graph's values (inputs, initializers, inferred intermediates)."""
        if self.proto is None:
            return {}
        graph = self.proto.graph
        try:
            inferred = list(onnx.shape_inference.infer_shapes(self.proto, strict_mode=False).graph.value_info)
        except Exception:
            inferred = []
        types = {t.name: t.data_type for t in graph.initializer}
        for value in [*graph.input, *graph.output, *graph.value_info, *inferred]:
            types.setdefault(value.name, value.type.tensor_type.elem_type)
        return {name: _DTYPE_NAMES.get(t, f"type {t}") for name, t in types.items() if t}


@functools.lru_cache(maxsize=1)
def _schema_versions() -> dict[tuple[str, str], set[int]]:
    versions: dict[tuple[str, str], set[int]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        versions.setdefault((schema.domain, schema.name), set()).add(int(schema.since_version))
    return versions


def _newer_version(op_type: str, domain: str, version: int) -> int | None:
    """The first version of ``domain::op_type`` after ``version`` that ONNX defines, if any."""
    versions = _schema_versions().get(("" if domain in _DEFAULT_DOMAINS else domain, op_type), set())
    return min((v for v in versions if v > version), default=None)


def _convert_fix(model: _Model, target: int) -> str:
    stem = os.path.splitext(os.path.basename(os.fspath(model.source)))[0] if model.is_path else "model"
    return (f"convert it with `wb.convert_opset(onnx_model, {target}, out='{stem}.opset{target}.onnx')` (onnx's "
            "version converter; it checks the converted model against the original with onnx's reference "
            "evaluator), then open the converted file")


def _kernel(m: re.Match[str], model: _Model, detail: str) -> Failure:
    op, version, name = m.group(1), int(m.group(2)), m.group(3)
    node, where = model.find_node(op, name)
    domain = node.domain if node is not None else ""
    opset, newer = model.opset(domain), _newer_version(op, domain, version)
    label = op if domain in _DEFAULT_DOMAINS else f"{domain}::{op}"
    if newer is not None and domain in _DEFAULT_DOMAINS and min(opset or version, version) < MIN_ORT_OPSET:
        target = min(max(SUGGESTED_OPSET, newer), onnx.defs.onnx_opset_version())
        what = (f"ONNX Runtime cannot open {model.where}: it imports ai.onnx opset {opset}, and ONNX Runtime no "
                f"longer implements {label} version {version} (node {where}); it runs opset {MIN_ORT_OPSET} and newer")
        fix = _convert_fix(model, target)
        return Failure("old_opset", what, fix[0].upper() + fix[1:], detail, op, domain, version, where, opset, target)
    types = sorted({model.value_types.get(i, "?") for i in (node.input if node is not None else []) if i})
    typed = f" for {', '.join(types)} inputs" if types else ""
    what = f"ONNX Runtime cannot open {model.where}: no kernel for {label} version {version}{typed} (node {where})"
    fix = (f"Cast the inputs of this node to a type ONNX Runtime implements for {op} (see {_KERNELS_DOC}), "
           "or use an execution provider that has the kernel")
    if newer is not None:
        fix += f"; a newer opset may help: {_convert_fix(model, newer)}"
    return Failure("no_kernel", what, fix, detail, op, domain, version, where, opset)


def _unregistered(m: re.Match[str], model: _Model, detail: str) -> Failure:
    domain, op = m.group(1), m.group(2)
    _, where = model.find_node(op, "")
    what = f"ONNX Runtime cannot open {model.where}: it has no implementation of {domain}::{op} (node {where})"
    if domain.startswith("ai.onnx.preview.training"):
        fix = f"{domain} ops describe training steps, which an inference session does not run; remove them"
    else:
        fix = (f"{op} is a custom op of domain '{domain}': register the library that implements it (onnxruntime."
               "SessionOptions.register_custom_ops_library(path)), or export the model without custom ops")
    return Failure("unregistered_op", what, fix, detail, op, domain, None, where, model.opset(domain))


_GRAPH_WHERE = [  # how ONNX Runtime names the node of an invalid graph: (pattern, op group, node group)
    (re.compile(r"of operator \((\w+)\) in node \(([^)]*)\)"), 1, 2),
    (re.compile(r"Optype \((\w+)\).*? in node \(([^)]*)\)"), 1, 2),
    (re.compile(r"Node \(([^)]*)\) Op \((\w+)\)"), 2, 1),
    (re.compile(r'In Node, \("([^"]*)", (\w+),'), 2, 1),
]


def _invalid_graph(m: re.Match[str], model: _Model, detail: str) -> Failure:
    found = next(((p.group(o), p.group(n)) for pattern, o, n in _GRAPH_WHERE if (p := pattern.search(detail))), None)
    typed = re.search(r"Type '(tensor\(\w+\))' of input parameter \((\w*)\)", detail)
    init = re.search(r"[Ii]nitializer:? '?([\w.:/-]+)", detail)
    what = f"ONNX Runtime cannot open {model.where}: the graph is invalid"
    what += f" at node {model.find_node(found[0], found[1])[1]} ({found[0]})" if found else ""
    what += f": it does not accept {typed.group(1)} for input '{typed.group(2)}'" if typed else ""
    what += f" (initializer '{init.group(1)}')" if init else ""
    return Failure("invalid_graph", what, _CHECK, detail, found[0] if found else None, "", None,
                   f"'{found[1]}'" if found else None)


def _simple(reason: str, what: str, fix: str) -> Callable[[re.Match[str], _Model, str], Failure]:
    def handler(m: re.Match[str], model: _Model, detail: str) -> Failure:
        groups = {f"g{i}": g for i, g in enumerate(m.groups(), 1)}
        return Failure(reason, what.format(where=model.where, **groups), fix.format(**groups), detail)

    return handler


_SESSION_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str], _Model, str], Failure]]] = [
    (re.compile(r"Could not find an implementation for (\w+)\((-?\d+)\) node with name '([^']*)'"), _kernel),
    (re.compile(r"([\w.]+):(\w+)\(-?\d+\) is not a registered function/op"), _unregistered),
    (re.compile(r"No Op registered for (\w+) with domain_version of (\d+)"),
     _simple("unknown_op", "ONNX Runtime cannot open {where}: ONNX has no op {g1} at opset {g2}", "Check the op "
             "name and the opset_import (an op newer than the imported opset needs a higher one); a custom op "
             "belongs in its own domain, with a registered implementation")),
    (re.compile(r"Opset (\d+) is under development.*?support for domain ([\w.]+) is till opset (\d+)", re.S),
     _simple("opset_too_new", "ONNX Runtime cannot open {where}: it imports {g2} opset {g1}; this build supports up "
             "to {g3}", "Upgrade onnxruntime (pip install -U onnxruntime), or convert the model down with "
             "`wb.convert_opset(onnx_model, {g3}, out='model.opset{g3}.onnx')` (onnx's version converter)")),
    (re.compile(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)"),
     _simple("ir_version", "ONNX Runtime cannot open {where}: its IR version {g1} is newer than this ONNX "
             "Runtime supports ({g2})", "Upgrade onnxruntime (pip install -U onnxruntime), or set "
             "onnx_model.ir_version = {g2} and save it, if it uses nothing newer")),
    (re.compile(r"Failed to construct locale with name:\s*([^:\s]+)"),
     _simple("locale", "ONNX Runtime cannot open {where}: a StringNormalizer node needs the system locale "
             "'{g1}', which this machine lacks", "Install it (e.g. `locale-gen {g1}`, or the `locales` package) "
             "or set the node's `locale` attribute to one that `locale -a` lists")),
    (re.compile(r"MLDataType for: (tensor\(\w+\)) is not currently registered"),
     _simple("unsupported_type", "ONNX Runtime cannot open {where}: it does not support the data type {g1}",
             "Cast the {g1} tensors to a supported type (e.g. float32) in the model")),
    (re.compile(r"[Pp]rotobuf parsing failed|INVALID_PROTOBUF|No graph was found in the protobuf|corrupted protobuf"),
     _simple("corrupt_file", "ONNX Runtime cannot read {where}: it is truncated, corrupt or not an ONNX model",
             _AGAIN)),
    (re.compile(r"NO_SUCHFILE|File doesn't exist"), _simple("missing_file", "No file at {where}", "Check the path")),
    (re.compile(r"[Ee]xternal data|external_data"),
     _simple("external_data", "ONNX Runtime cannot load the external data of {where}",
             "Keep the external-data files beside the .onnx file (inside its folder) and open the model by its "
             "path, not as a ModelProto or bytes, so their relative locations resolve")),
    (re.compile(r"No opset import for domain '([^']*)'"),
     _simple("invalid_graph", "ONNX Runtime cannot open {where}: a node uses domain '{g1}', which the model does "
             "not import", "Add an opset_import for '{g1}' (onnx.helper.make_opsetid('{g1}', 1))")),
    (re.compile(r"Type Error|ShapeInferenceError|INVALID_GRAPH|[Ii]nvalid model|INVALID_ARGUMENT|Missing opset|[Ii]nitial"
                r"izer|NodeArg|Constant ?[Nn]ode|Out of bounds|overflow|negative dim"), _invalid_graph),
    (re.compile(r"CUDA|TensorRT|cuDNN|cudnn|EP_FAIL|EPFail|[Ee]xecution [Pp]rovider"),
     _simple("provider", "An execution provider failed while opening {where}",
             "Check the provider's drivers and libraries, or run on ('CPUExecutionProvider',)")),
]


def classify_session_error(exc: BaseException, onnx_model: Any = None) -> Failure:
    """Why loading ``onnx_model`` or building its session raised ``exc``, as a ``Failure``."""
    model, detail = _Model(onnx_model), _detail(exc)
    if type(exc).__name__ == "DecodeError" or isinstance(exc, UnicodeDecodeError):  # or a name that is not UTF-8
        return Failure("corrupt_file", f"{model.where} cannot be read as an ONNX model: it is truncated, corrupt or "
                       "not ONNX", _AGAIN, detail)
    if isinstance(exc, onnx.checker.ValidationError):
        return Failure("invalid_graph", f"onnx's checker rejects {model.where}", _CHECK, detail)
    for pattern, handler in _SESSION_RULES:
        match = pattern.search(str(exc))
        if match:
            return handler(match, model, detail)
    return Failure("other", f"ONNX Runtime cannot open {model.where}", "Run wb.summarize(onnx_model) to check "
                   "the model; if it is valid, report this to ONNX Runtime with the model attached", detail)


def explain_session_error(exc: BaseException, onnx_model: Any = None) -> WorkbenchError:
    """A ``WorkbenchError`` saying why ``onnx_model`` could not be loaded or opened, for ``exc``
    raised by onnx or ONNX Runtime. A ``WorkbenchError`` is returned as is."""
    if isinstance(exc, WorkbenchError):
        return exc
    return _error(classify_session_error(exc, onnx_model))


def _fed(session: Any, inputs: Any) -> list[tuple[Any, Any]]:
    """(graph input, fed value) pairs, as far as they can be matched."""
    try:
        specs = list(session.get_inputs())
    except Exception:
        return []
    if isinstance(inputs, Mapping):
        return [(s, inputs[s.name]) for s in specs if s.name in inputs]
    return list(zip(specs, inputs)) if isinstance(inputs, (list, tuple)) else []


def _numpy_dtype(m: re.Match[str], session: Any, inputs: Any, detail: str) -> Failure:
    num = int(m.group(1))
    fed = [(s.name, v.dtype) for s, v in _fed(session, inputs) if getattr(getattr(v, "dtype", None), "num", 0) == num]
    name, dtype = fed[0] if fed else ("?", f"numpy type {num}")
    what = f"ONNX Runtime's Python API cannot take {dtype} arrays (input '{name}')"
    fix = ("Feed float32 and Cast inside the model, or pass an OrtValue (onnxruntime.OrtValue.ortvalue_from_numpy_"
           "with_onnx_type(array.view(np.uint8), onnx_element_type)) to session.run_with_ort_values")
    return Failure("numpy_dtype", what, fix, detail)


def _feed(what: str, fix: str, reason: str = "feed") -> Callable[[re.Match[str], Any, Any, str], Failure]:
    def handler(m: re.Match[str], session: Any, inputs: Any, detail: str) -> Failure:
        groups = {f"g{i}": " ".join((g or "").split()) for i, g in enumerate(m.groups(), 1)}
        wrong = [s.name for s, v in _fed(session, inputs) if s.type == groups.get("g2") and _ort_type(v) != s.type]
        return Failure(reason, what.format(name=(wrong or ["?"])[0], **groups), fix.format(**groups), detail)

    return handler


def _ort_type(value: Any) -> str:
    text = str(getattr(value, "dtype", type(value).__name__))
    return f"tensor({ {'float32': 'float', 'float64': 'double', 'object': 'string'}.get(text, text)})"


def _node_failed(m: re.Match[str], session: Any, inputs: Any, detail: str) -> Failure:
    op, node = m.group(1), m.group(2)
    fix = ("The inputs' sizes or values do not fit what this node expects (often a size fixed at export time): "
           "feed the sizes the model was exported with, or export with these axes dynamic")
    what = f"Node '{node}' ({op}) failed while running: {brief(m.group(3), 200)}"
    return Failure("node_failed", what, fix, detail, op, "", None, f"'{node}'")


_RUN_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str], Any, Any, str], Failure]]] = [
    (re.compile(r"Numpy_type (\d+) can't be converted to MLDataType"), _numpy_dtype),
    (re.compile(r"No corresponding Numpy type for Tensor Type\.?\s*(\w+)"),
     _feed("ONNX Runtime's Python API cannot return {g1} outputs as numpy arrays", "Cast them to float32 at the end "
           "of the model, or read them as OrtValues through IOBinding (session.run_with_iobinding)", "numpy_dtype")),
    (re.compile(r"Unexpected input data type\. Actual: \((tensor\(\w+\))\)\s*, expected: \((tensor\(\w+\))\)"),
     _feed("Input '{name}' expects {g2}, received {g1}", "Convert it to the expected type (array.astype(...))")),
    (re.compile(r"Got invalid dimensions for input: (\S+) for the following indices(.*?)Please fix", re.S),
     _feed("Input '{g1}' has the wrong size: {g2}", "Feed the sizes the graph declares "
           "(wb.summarize(onnx_model).inputs) or export with this axis dynamic")),
    (re.compile(r"Invalid rank for input: (\S+) Got: (\d+) Expected: (\d+)"),
     _feed("Input '{g1}' has rank {g2}, the graph expects rank {g3}", "Add or remove dimensions (e.g. the batch)")),
    (re.compile(r"Required inputs \((.*?)\) are missing from input feed \((.*?)\)"),
     _feed("Inputs {g1} are missing from the feed (it has {g2})", "Feed every graph input by its name")),
    (re.compile(r"Invalid input name: ?(\S+)"),
     _feed("The feed names an input '{g1}' the graph does not have", "Use the names of session.get_inputs()")),
    (re.compile(r"Invalid output name: ?(\S+)"),
     _feed("'{g1}' is not an output of the graph", "Ask for the names of session.get_outputs(), or None for all")),
    (re.compile(r"Non-zero status code returned while running (\w+) node\. Name:'([^']*)' Status Message: (.*)",
                re.S), _node_failed),
]


def classify_run_error(exc: BaseException, session: Any = None, inputs: Any = None) -> Failure:
    """Why ``session.run`` on ``inputs`` raised ``exc``, as a ``Failure``."""
    detail = _detail(exc)
    for pattern, handler in _RUN_RULES:
        match = pattern.search(str(exc))
        if match:
            return handler(match, session, inputs, detail)
    if isinstance(exc, (TypeError, ValueError)) or type(exc).__name__ == "InvalidArgument":
        return Failure("feed", "ONNX Runtime rejected the inputs", "Feed one numpy array per graph input, of the "
                       "graph's dtype and rank (session.get_inputs())", detail)
    return Failure("run_failed", "ONNX Runtime failed while running the model", "Check the inputs against "
                   "wb.summarize(onnx_model).inputs; if they fit, report this to ONNX Runtime with the model", detail)


def explain_run_error(exc: BaseException, session: Any = None, inputs: Any = None) -> WorkbenchError:
    """A ``WorkbenchError`` saying why running ``session`` on ``inputs`` raised ``exc`` (a
    ``FeedError`` for inputs that do not fit the graph). A ``WorkbenchError`` is returned as is."""
    if isinstance(exc, WorkbenchError):
        return exc
    return _error(classify_run_error(exc, session, inputs))


@contextmanager
def _explaining(explain: Callable[..., WorkbenchError], *context: Any) -> Iterator[None]:
    try:
        yield
    except (WorkbenchError, MemoryError):
        raise
    except Exception as exc:
        raise explain(exc, *context) from exc


def session_errors(onnx_model: Any = None) -> AbstractContextManager[None]:
    """Raise ``explain_session_error(exc, onnx_model)`` for an exception in the block (``WorkbenchError``
    and ``MemoryError`` pass through): ``with session_errors(onnx_model): ort.InferenceSession(...)``."""
    return _explaining(explain_session_error, onnx_model)


def run_errors(session: Any = None, inputs: Any = None) -> AbstractContextManager[None]:
    """The same for ``session.run``: ``with run_errors(session, feed): session.run(None, feed)``."""
    return _explaining(explain_run_error, session, inputs)
