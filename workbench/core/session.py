"""Session configuration, provider checks and ``InferenceSession`` creation.

``open_session`` builds a new session every call; ``load_session`` is the memoized, thread-safe
loader (see ``workbench.core.loader``) that compare, the live diff and the widgets share.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import onnxruntime as ort

from workbench.core._checks import is_int
from workbench.core._io import OnnxModel, PathLike, check_onnx_path, is_path, load_model
from workbench.core.ort_errors import session_errors
from workbench.errors import InvalidInputError, ProviderError

OptLevel = Literal["disable", "basic", "extended", "layout", "all"]

#: The levels the sweeps, the pipeline and the doctor's bisection run by default, lowest first.
OPT_LEVELS: tuple[OptLevel, ...] = ("disable", "basic", "extended", "all")
#: Every level ONNX Runtime has, lowest first. ``layout`` (``ORT_ENABLE_LAYOUT``, in ONNX Runtime 1.32) is
#: ``extended`` plus the layout transformers (NCHWc on CPU); on this project's models ``all`` gave the
#: same graph, which is why the default sweeps leave it out. ``SessionConfig`` accepts it.
ALL_OPT_LEVELS: tuple[OptLevel, ...] = ("disable", "basic", "extended", "layout", "all")
_ORT_LEVELS: dict[str, ort.GraphOptimizationLevel] = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
if hasattr(ort.GraphOptimizationLevel, "ORT_ENABLE_LAYOUT"):
    _ORT_LEVELS["layout"] = ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT
else:  # pragma: no cover - an older ONNX Runtime: its "all" holds what "layout" names
    _ORT_LEVELS["layout"] = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
EXECUTION_MODES = {
    "sequential": ort.ExecutionMode.ORT_SEQUENTIAL,
    "parallel": ort.ExecutionMode.ORT_PARALLEL,
}


class ProviderFallbackWarning(UserWarning):
    """A requested execution provider is not available here; ONNX Runtime would fall back silently."""


@dataclass(frozen=True)
class SessionConfig:
    """How to build an ``onnxruntime.InferenceSession``.

    ``providers`` are ONNX Runtime provider names in priority order. ``opt_level`` is one
    of ``disable``, ``basic``, ``extended``, ``layout``, ``all`` (ONNX Runtime's default is ``all``).
    Thread counts of 0 let ONNX Runtime choose. ``config_entries`` are passed to
    ``SessionOptions.add_session_config_entry`` (e.g. ``{"optimization.enable_gelu_approximation": "1"}``).
    """

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    opt_level: OptLevel = "all"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    allow_spinning: bool = True
    optimized_model_path: str | None = None
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    disabled_optimizers: tuple[str, ...] = ()
    enable_profiling: bool = False
    config_entries: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        providers = self.providers
        if isinstance(providers, str):
            providers = (providers,)
        object.__setattr__(self, "providers", tuple(providers))
        object.__setattr__(self, "disabled_optimizers", tuple(self.disabled_optimizers))
        if self.opt_level not in ALL_OPT_LEVELS:
            raise InvalidInputError(
                f"Unknown opt_level {self.opt_level!r}. Use one of {list(ALL_OPT_LEVELS)}."
            )
        if self.execution_mode not in EXECUTION_MODES:
            raise InvalidInputError(
                f"Unknown execution_mode {self.execution_mode!r}. Use 'sequential' or 'parallel'."
            )
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if not is_int(value, 0):
                raise InvalidInputError(
                    f"{name} must be an int >= 0 (0 lets ONNX Runtime choose), received {value!r}."
                )
        if not self.providers:
            raise ProviderError("providers is empty. Pass at least one, e.g. ('CPUExecutionProvider',).")

    def label(self) -> str:
        """A short label such as ``CPU/all/t2`` for tables and plots."""
        short = "+".join(p.replace("ExecutionProvider", "") for p in self.providers)
        text = f"{short}/{self.opt_level}"
        if self.intra_op_threads:
            text += f"/t{self.intra_op_threads}"
        if self.execution_mode == "parallel":
            text += "/par"
        return text

    def replace(self, **changes: Any) -> SessionConfig:
        """A copy with some fields changed."""
        from dataclasses import replace

        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON types (tuples become lists); ``from_json`` reads it back."""
        return {
            "providers": list(self.providers), "opt_level": self.opt_level,
            "intra_op_threads": self.intra_op_threads, "inter_op_threads": self.inter_op_threads,
            "execution_mode": self.execution_mode, "allow_spinning": self.allow_spinning,
            "optimized_model_path": self.optimized_model_path,
            "provider_options": {k: dict(v) for k, v in self.provider_options.items()},
            "disabled_optimizers": list(self.disabled_optimizers), "enable_profiling": self.enable_profiling,
            "config_entries": {str(k): str(v) for k, v in self.config_entries.items()},
        }

    def to_json(self, out: PathLike | None = None) -> str:
        """The config as JSON text; also written to ``out`` (a path) when given."""
        import json

        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if out is not None:
            from pathlib import Path

            Path(out).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, source: Any) -> SessionConfig:
        """A config from JSON text, a path to a ``.json`` file, or a dict (see ``_config_from_json``)."""
        return _config_from_json(source)


_JSON_FIELDS: dict[str, tuple[type, ...]] = {
    "providers": (list, tuple, str), "opt_level": (str,), "intra_op_threads": (int,), "inter_op_threads": (int,),
    "execution_mode": (str,), "allow_spinning": (bool,), "optimized_model_path": (str, type(None)),
    "provider_options": (dict,), "disabled_optimizers": (list, tuple), "enable_profiling": (bool,),
    "config_entries": (dict,),
}


def _json_source(source: Any) -> dict[str, Any]:
    """``source`` (a dict, JSON text or a path to a JSON file) as a dict; a tune file gives its "config"."""
    import json
    from pathlib import Path

    data = source
    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith(("{", "["))):
        path = Path(source)
        if not path.is_file():
            raise InvalidInputError(f"SessionConfig.from_json: no JSON file at '{path}'. Pass JSON text, a dict or "
                                    "the path of a file written by SessionConfig.to_json(out) or TuneResult.save(out).")
        data = path.read_text(encoding="utf-8")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise InvalidInputError(f"SessionConfig.from_json: the text is not valid JSON ({exc}).") from exc
    if isinstance(data, dict) and "config" in data and "onnx_model" in data:  # a tune file (TuneResult.save)
        if data["config"] is None:
            raise InvalidInputError("SessionConfig.from_json: this tune file holds no chosen config (verdict: "
                                    f"{str(data.get('verdict', ''))[:200]}). Keep PyTorch, or tune again.")
        data = data["config"]
    if not isinstance(data, dict):
        raise InvalidInputError(f"SessionConfig.from_json expects a JSON object (a dict of fields), received "
                                f"{type(data).__name__}. Known keys: {sorted(_JSON_FIELDS)}.")
    return data


def _config_from_json(source: Any) -> SessionConfig:
    """A ``SessionConfig`` from a dict / JSON text / JSON file; unknown keys and bad values name the key."""
    data = _json_source(source)
    unknown = sorted(set(data) - set(_JSON_FIELDS))
    if unknown:
        raise InvalidInputError(f"SessionConfig.from_json: unknown key(s) {unknown}. Known keys: {sorted(_JSON_FIELDS)}.")
    for key, value in data.items():
        types = _JSON_FIELDS[key]
        wrong = not isinstance(value, types) or (bool not in types and isinstance(value, bool))
        if wrong:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise InvalidInputError(f"SessionConfig.from_json: key {key!r} must be {names}, received {value!r}. "
                                    f"Known keys: {sorted(_JSON_FIELDS)}.")
    fields = dict(data)
    for key in ("providers", "disabled_optimizers"):
        if key in fields and not isinstance(fields[key], str):
            fields[key] = tuple(fields[key])
    try:
        return SessionConfig(**fields)
    except InvalidInputError as exc:
        raise InvalidInputError(f"SessionConfig.from_json: {exc}") from exc


def check_providers(providers: Sequence[str]) -> list[str]:
    """Check provider names against ONNX Runtime's known and available providers.

    A name ONNX Runtime does not know raises ``ProviderError`` naming the closest right
    spelling. A known provider that is not available in this build warns with
    ``ProviderFallbackWarning`` and is dropped. Returns the providers that will be used,
    with the CPU provider always last as ONNX Runtime's fallback.
    """
    known = ort.get_all_providers()
    available = ort.get_available_providers()
    used: list[str] = []
    for name in providers:
        if not isinstance(name, str):
            raise ProviderError(
                f"A provider must be a name such as 'CPUExecutionProvider', received {name!r}. "
                "Put provider options in SessionConfig(provider_options={name: {...}})."
            )
        if name not in known:
            lower = {k.lower(): k for k in known}
            hint = lower.get(name.lower()) or next(
                iter(difflib.get_close_matches(name, known, n=1, cutoff=0.5)), None
            )
            fix = f"Did you mean '{hint}'?" if hint else f"Known providers: {', '.join(known)}."
            raise ProviderError(
                f"Unknown execution provider {name!r}: ONNX Runtime would print a line and run on "
                f"CPU instead. {fix}"
            )
        if name not in available:
            warnings.warn(
                f"{name} is not available in this onnxruntime build (available: {', '.join(available)}); "
                f"the session will run on {', '.join(p for p in providers if p in available) or 'CPUExecutionProvider'}. "
                "Install onnxruntime-gpu (pip install onnx-workbench[gpu]) for CUDA/TensorRT.",
                ProviderFallbackWarning,
                stacklevel=3,
            )
            continue
        if name not in used:
            used.append(name)
    if "CPUExecutionProvider" not in used:
        used.append("CPUExecutionProvider")
    return used


def session_options(config: SessionConfig) -> ort.SessionOptions:
    """``onnxruntime.SessionOptions`` for a ``SessionConfig``."""
    so = ort.SessionOptions()
    so.graph_optimization_level = _ORT_LEVELS[config.opt_level]
    so.intra_op_num_threads = config.intra_op_threads
    so.inter_op_num_threads = config.inter_op_threads
    so.execution_mode = EXECUTION_MODES[config.execution_mode]
    if not config.allow_spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if config.optimized_model_path:
        so.optimized_model_filepath = str(config.optimized_model_path)
    for key, value in config.config_entries.items():
        so.add_session_config_entry(str(key), str(value))
    if config.enable_profiling:
        so.enable_profiling = True
        from workbench.core._workdirs import new_scratch_dir  # a private folder, never a fixed /tmp name

        so.profile_file_prefix = str(new_scratch_dir("profiles") / "ort_profile")
    so.log_severity_level = 4  # errors reach the caller as exceptions; no duplicate red lines
    return so


def check_config(config: Any) -> SessionConfig:
    """``config`` (None: the default ``SessionConfig()``), checked."""
    config = config or SessionConfig()
    if not isinstance(config, SessionConfig):
        raise InvalidInputError(
            f"config must be a wb.SessionConfig, received {type(config).__name__}. "
            "Build one with wb.SessionConfig(providers=[...], opt_level='all')."
        )
    return config


def open_session(onnx_model: OnnxModel, config: SessionConfig | None = None) -> ort.InferenceSession:
    """Build a new ``InferenceSession`` for ``onnx_model`` (a path or a ``ModelProto``) with ``config``.

    A session is returned as it is. Providers are checked first (see ``check_providers``). A file
    ONNX Runtime cannot read raises ``ModelFileError``; a model it refuses (an opset it no longer
    implements, an op without a kernel, an invalid graph...) ``UnsupportedModelError``, whose
    message names the op, node and opset and the fix (``wb.convert_opset`` for old opsets).
    """
    if isinstance(onnx_model, ort.InferenceSession):
        return onnx_model
    config = check_config(config)
    providers = check_providers(config.providers)
    provider_args = [(p, dict(config.provider_options.get(p, {}))) for p in providers]
    for name in config.provider_options:
        if name not in ort.get_all_providers():
            raise ProviderError(
                f"provider_options names {name!r}, which is not an ONNX Runtime provider. "
                "Use the exact provider name, e.g. 'CUDAExecutionProvider'."
            )
    so = session_options(config)
    source: Any = str(check_onnx_path(onnx_model)) if is_path(onnx_model) else load_model(onnx_model)
    # ONNX Runtime's own exceptions (an old opset, a missing kernel, a corrupt file...) become
    # WorkbenchErrors that name the op, node and opset and say what to do (core/ort_errors.py).
    with session_errors(onnx_model):
        session = ort.InferenceSession(
            source if isinstance(source, str) else source.SerializeToString(),
            sess_options=so,
            providers=provider_args,
            disabled_optimizers=list(config.disabled_optimizers) or None,
        )
    check_built_providers(session, providers)
    return session


def check_built_providers(session: ort.InferenceSession, requested: Sequence[str]) -> list[str]:
    """Warn ``ProviderFallbackWarning`` for each requested provider the built session does not use.

    A provider can be available in the build and still fail when the session is created (a CUDA or
    cuDNN library that does not load, TensorRT without its libraries, provider options it refuses);
    ONNX Runtime then drops it without an exception. Returns the missing providers.
    """
    used = list(session.get_providers())
    missing = [p for p in requested if p not in used]
    for name in missing:
        warnings.warn(
            f"{name} was requested and is available in this onnxruntime build, but the session was built "
            f"without it: it runs on {', '.join(used)}. ONNX Runtime drops a provider that fails to start "
            "(libraries that do not load, options it refuses) without an exception; run "
            "onnxruntime.preload_dlls() before the first session, check the provider options, and read "
            "session.get_providers() after creating a session.",
            ProviderFallbackWarning,
            stacklevel=3,
        )
    return missing


def session_providers(session: ort.InferenceSession) -> list[str]:
    """The providers a session actually uses."""
    return list(session.get_providers())


def load_session(onnx_model: OnnxModel, config: SessionConfig | None = None) -> ort.InferenceSession:
    """A shared, memoized ``InferenceSession`` for ``onnx_model`` with ``config`` (thread-safe).

    The same file (same resolved path, modification time and size) with the same config gives
    the same session; a rewritten file gives a new one. Do not change the returned session's
    state; use ``open_session`` for a private one. A session is returned as it is.
    """
    from workbench.core.loader import SESSIONS

    return SESSIONS.get(onnx_model, config)
