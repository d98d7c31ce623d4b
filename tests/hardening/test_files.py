"""Files and caches (issue 9 §4): the export cache checks content, an export's pair of files is replaced
atomically, nothing lands on a predictable path in /tmp, the doctor's folders do not pile up, the doctor's
HTML is written atomically."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import workbench as wb

STAGING = ".wb-export-"


@pytest.fixture()
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def _ts(case: wb.ModelCase, *, external_data: bool = False) -> wb.ExportSpec:
    return case.spec.replace(exporter="torchscript", opset=17, external_data=external_data)


def _other(model: nn.Module) -> nn.Module:
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5)
    return other


def _runs_like(path: Path, model: nn.Module, x: torch.Tensor) -> bool:
    """Whether the ONNX file (with the data files it names, opened afresh) computes what ``model`` does."""
    session = wb.open_session(path)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        return bool(np.allclose(got, model(x).numpy(), rtol=1e-4, atol=1e-5))


def _data_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".data"))


def _named_data(path: Path) -> list[str]:
    from workbench.core._files import external_files

    return sorted(f.name for f in external_files(onnx.load(str(path), load_external_data=False), path.parent))


def _keep_stat(path: Path, stat: os.stat_result) -> None:
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# --- the cache checks content ------------------------------------------------------------------------

def test_a_foreign_onnx_with_the_same_size_and_mtime_is_re_exported(mlp: wb.ModelCase, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    first = wb.export(mlp.model, mlp.example_inputs, out, spec=_ts(mlp))
    stat = out.stat()
    foreign = onnx.load(str(out))
    weight = next(t for t in foreign.graph.initializer if t.raw_data)
    weight.raw_data = bytes(b ^ 0x01 for b in weight.raw_data)  # other weights, same number of bytes
    out.write_bytes(foreign.SerializeToString())
    _keep_stat(out, stat)
    again = wb.export(mlp.model, mlp.example_inputs, out, spec=_ts(mlp))
    assert not again.cached and again.fingerprint == first.fingerprint
    assert _runs_like(out, mlp.model, mlp.make_inputs(batch=3)[0])
    assert wb.export(mlp.model, mlp.example_inputs, out, spec=_ts(mlp)).cached  # and now the record fits again


def test_changed_external_data_with_the_same_size_and_mtime_is_re_exported(mlp: wb.ModelCase, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    wb.export(mlp.model, mlp.example_inputs, out, spec=_ts(mlp, external_data=True))
    (data,) = [tmp_path / name for name in _named_data(out)]
    stat = data.stat()
    data.write_bytes(bytes(b ^ 0x01 for b in data.read_bytes()))
    _keep_stat(data, stat)
    assert not wb.export(mlp.model, mlp.example_inputs, out, spec=_ts(mlp, external_data=True)).cached
    assert _runs_like(out, mlp.model, mlp.make_inputs(batch=3)[0])


# --- the pair is replaced atomically -----------------------------------------------------------------

class _Killed(Exception):
    pass


def _fail_at(step: str, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Raise ``_Killed`` at one step of putting the files in place: moving the new data file in (``data``),
    replacing the .onnx (``switch``), deleting the old pair's data file (``cleanup``)."""
    real_replace, real_unlink = os.replace, Path.unlink
    failed: list[str] = []

    def fail() -> None:
        if not failed:  # once: what runs after the failure (the cleanup) works again
            failed.append(step)
            raise _Killed(step)

    def replace(src: Any, dst: Any) -> None:
        dst = Path(dst)
        if dst.parent == target.parent and ((step == "data" and dst.name.endswith(".data"))
                                            or (step == "switch" and dst == target)):
            fail()
        real_replace(src, dst)

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if step == "cleanup" and self.parent == target.parent and self.name.endswith(".data"):
            fail()
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(Path, "unlink", unlink)


@pytest.mark.parametrize("step", ["data", "switch", "cleanup"])
def test_a_failure_at_any_step_leaves_the_old_or_the_new_pair(mlp: wb.ModelCase, tmp_path: Path, step: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out, spec, x = tmp_path / "m.onnx", _ts(mlp, external_data=True), mlp.make_inputs(batch=3)[0]
    old, new = mlp.model, _other(mlp.model)
    wb.export(old, mlp.example_inputs, out, spec=spec)
    with monkeypatch.context() as patch:
        _fail_at(step, out, patch)
        with pytest.raises(_Killed):
            wb.export(new, mlp.example_inputs, out, spec=spec)
    assert _runs_like(out, new if step == "cleanup" else old, x)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING)]
    assert _data_files(tmp_path) == _named_data(out)  # no data file that the .onnx does not use


def test_a_killed_export_leaves_the_old_pair_and_the_next_export_cleans_up(mlp: wb.ModelCase, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.core import _export_files

    out, spec, x = tmp_path / "m.onnx", _ts(mlp, external_data=True), mlp.make_inputs(batch=3)[0]
    old, new = mlp.model, _other(mlp.model)
    wb.export(old, mlp.example_inputs, out, spec=spec)
    with monkeypatch.context() as patch:
        _fail_at("switch", out, patch)
        patch.setattr(_export_files, "_discard", lambda folder, parent: None)  # a kill runs no cleanup
        with pytest.raises(_Killed):
            wb.export(new, mlp.example_inputs, out, spec=spec)
    assert [p for p in tmp_path.iterdir() if p.name.startswith(STAGING)]
    assert len(_data_files(tmp_path)) == 2  # the old pair's and the new, not yet used, data file
    assert _runs_like(out, old, x)
    wb.export(new, mlp.example_inputs, tmp_path / "other.onnx", spec=spec)  # any export into the folder
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING)]
    assert _data_files(tmp_path) == sorted(_named_data(out) + _named_data(tmp_path / "other.onnx"))
    assert _runs_like(out, old, x)


_KILL_CHILD = textwrap.dedent("""
    import copy, os, sys
    from pathlib import Path
    import torch
    import workbench as wb

    out = Path(sys.argv[1])
    case = wb.zoo.get("mlp", smoke=True)
    spec = case.spec.replace(exporter="torchscript", opset=17, external_data=True)
    model = copy.deepcopy(case.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    real = os.replace
    def replace(src, dst):
        if Path(dst) == out:
            os._exit(17)  # killed between putting the new data file in place and replacing the .onnx
        real(src, dst)
    os.replace = replace
    wb.export(model, case.example_inputs, out, spec=spec)
""")


def test_a_process_killed_mid_export_leaves_the_old_pair(mlp: wb.ModelCase, tmp_path: Path) -> None:
    out, spec, x = tmp_path / "m.onnx", _ts(mlp, external_data=True), mlp.make_inputs(batch=3)[0]
    old = wb.zoo.get("mlp", smoke=True).model
    wb.export(old, mlp.example_inputs, out, spec=spec)
    child = subprocess.run([sys.executable, "-c", _KILL_CHILD, str(out)], capture_output=True, text=True, timeout=300)
    assert child.returncode == 17, child.stderr[-2000:]
    assert _runs_like(out, old, x)
    again = wb.export(old, mlp.example_inputs, out, spec=spec)
    assert again.cached
    wb.export(old, mlp.example_inputs, tmp_path / "next.onnx", spec=spec)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING)]
    assert _data_files(tmp_path) == sorted(_named_data(out) + _named_data(tmp_path / "next.onnx"))


def test_a_staging_folder_of_a_live_process_is_left_alone(mlp: wb.ModelCase, tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f"{STAGING}{sleeper.pid}-abc"
        dead = tmp_path / f"{STAGING}{_dead_pid()}-abc"
        live.mkdir()
        dead.mkdir()
        wb.export(mlp.model, mlp.example_inputs, tmp_path / "m.onnx", spec=_ts(mlp))
        assert live.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


# --- no predictable shared paths ---------------------------------------------------------------------

def test_the_cache_folder_is_private_to_the_user(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.core._workdirs import user_cache_dir

    folder = user_cache_dir("work")
    assert folder == cache_home / "onnx-workbench" / "work"
    assert (cache_home / "onnx-workbench").stat().st_mode & 0o777 == 0o700
    os.chmod(cache_home / "onnx-workbench", 0o777)
    user_cache_dir()
    assert (cache_home / "onnx-workbench").stat().st_mode & 0o777 == 0o700
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec says: ignore it
    monkeypatch.setenv("HOME", str(cache_home.parent / "home"))
    assert user_cache_dir() == cache_home.parent / "home" / ".cache" / "onnx-workbench"


def test_a_symlinked_cache_folder_is_refused(cache_home: Path, tmp_path: Path) -> None:
    from workbench.core._workdirs import user_cache_dir

    cache_home.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (cache_home / "onnx-workbench").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(wb.WorkbenchError, match="symlink"):
        user_cache_dir()


def test_the_cli_work_dir_defaults_to_the_user_cache(cache_home: Path) -> None:
    from workbench.cli import build_parser

    args = build_parser().parse_args(["bench", "model.onnx"])
    assert Path(args.work_dir).is_relative_to(cache_home / "onnx-workbench")


def test_ort_profile_files_go_to_a_private_folder_and_are_removed(mlp: wb.ModelCase, tmp_path: Path,
                                                                   cache_home: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    path = wb.export(mlp.model, mlp.example_inputs, tmp_path / "m.onnx", spec=_ts(mlp)).out
    written: list[Path] = []
    real = ort.InferenceSession.end_profiling

    def end_profiling(self: ort.InferenceSession) -> str:
        written.append(Path(real(self)))
        return str(written[-1])

    monkeypatch.setattr(ort.InferenceSession, "end_profiling", end_profiling)
    assert wb.placement(path, mlp.example_inputs).nodes
    (profile,) = written
    assert profile.is_relative_to(cache_home / "onnx-workbench")
    assert not profile.exists() and not profile.parent.exists()


def test_the_doctor_keeps_only_its_last_work_dirs(mlp: wb.ModelCase, cache_home: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.doctor import engine

    monkeypatch.setattr(engine, "KEEP_WORK_DIRS", 2)
    folders = [wb.diagnose(mlp.model, mlp.example_inputs, spec=mlp.spec, retry=False).work_dir for _ in range(3)]
    parent = cache_home / "onnx-workbench" / "doctor"
    assert all(Path(f).parent == parent for f in folders)
    assert sorted(parent.iterdir()) == sorted(Path(f) for f in folders[1:])


def test_prune_keeps_the_newest_under_a_size_cap(tmp_path: Path) -> None:
    from workbench.core._workdirs import prune

    for i, size in enumerate([10, 10, 10, 10]):
        folder = tmp_path / f"doctor-{i}"
        folder.mkdir()
        (folder / "f").write_bytes(b"x" * size)
        os.utime(folder, (1000 + i, 1000 + i))
    assert [p.name for p in prune(tmp_path, prefix="doctor-", keep=3)] == ["doctor-0"]
    assert [p.name for p in prune(tmp_path, prefix="doctor-", keep=3, max_bytes=25)] == ["doctor-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doctor-2", "doctor-3"]


# --- the doctor's HTML is written atomically -----------------------------------------------------------

class _FakeDiagnosis:
    ok = True

    def text(self) -> str:
        return "diagnosis"

    def _repr_html_(self) -> str:
        return "<p>" + "new " * 1000 + "</p>"


def test_the_doctor_html_is_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.cli import main
    from workbench.doctor import gallery

    out = tmp_path / "diagnosis.html"
    out.write_text("old")
    monkeypatch.setattr(gallery, "diagnose_case", lambda case, **kwargs: _FakeDiagnosis())
    real = Path.write_text

    def disk_full(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        real(self, data[:20], *args, **kwargs)
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", disk_full)
        with pytest.raises(OSError):
            main(["doctor", "zoo:mlp", "--smoke", "--no-retry", "--out", str(out)])
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diagnosis.html"]
    assert main(["doctor", "zoo:mlp", "--smoke", "--no-retry", "--out", str(out)]) == 0
    assert out.read_text().endswith(_FakeDiagnosis()._repr_html_())
