"""``binder/`` holds what repo2docker (mybinder.org) needs. Docker is not available here, so the test
does the step that can be checked without it: ``binder/requirements.txt`` installs into a fresh
virtual environment (from the repository root, as repo2docker runs it), then ``binder/postBuild``
runs in that environment and finds the Jupyter extensions the notebooks need.

The requirements name PyTorch's CPU index, which CI cannot reach (only PyPI and its mirrors):
``--retries 0`` makes pip give up on it at once, and ``-c constraints.txt`` (``torch==2.13.0``) resolves
torch to the CPU wheel in pip's local wheel cache, the same build the CPU index serves.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def test_binder_files_agree_with_the_project() -> None:
    requirements = (BINDER / "requirements.txt").read_text()
    constraints = (ROOT / "constraints.txt").read_text()
    pinned = re.search(r"^torch==(\S+)$", constraints, flags=re.M)
    assert pinned and f"torch=={pinned.group(1)}" in requirements.splitlines(), "pin the same torch as constraints.txt"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements, "Binder needs the CPU build"
    assert "-e .[cpu,serve]" in requirements.splitlines(), "the workbench with its CPU runtime and notebook 12's server"
    runtime = (BINDER / "runtime.txt").read_text().strip()
    minimum = re.search(r'^requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    assert minimum and re.fullmatch(r"python-3\.\d+", runtime) and int(runtime.split(".")[1]) >= int(minimum.group(1))
    post_build = BINDER / "postBuild"
    assert post_build.stat().st_mode & stat.S_IXUSR, "postBuild must be executable"
    assert post_build.read_text().startswith("#!/usr/bin/env bash")


def test_readme_has_the_binder_link() -> None:
    readme = (ROOT / "README.md").read_text()
    link = "https://mybinder.org/v2/gh/onnx-workbench/onnx-workbench/main?urlpath=lab/tree/notebooks/00_start_here.ipynb"
    assert link in readme
    assert "00_start_here.ipynb" in readme.split("## Notebooks and Binder", 1)[1]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_binder_requirements_install_into_a_fresh_venv(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    install = [str(python), "-m", "pip", "install", "--no-compile", "--retries", "0", "--timeout", "5",
               "--disable-pip-version-check", "-q", "-c", "constraints.txt", "-r", "binder/requirements.txt"]
    done = subprocess.run(install, cwd=ROOT, capture_output=True, text=True, timeout=1100)
    assert done.returncode == 0, f"pip install -r binder/requirements.txt failed:\n{done.stderr[-4000:]}"

    probe = "import torch, onnxruntime, workbench; print(torch.__version__, torch.version.cuda, onnxruntime.get_device())"
    versions = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=300)
    assert versions.returncode == 0, versions.stderr[-2000:]
    torch_version, cuda, device = versions.stdout.split()
    assert torch_version.startswith("2.13.0") and cuda == "None" and device == "CPU", versions.stdout

    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(tmp_path / "home"),
           "VIRTUAL_ENV": str(env_dir)}
    post = subprocess.run(["bash", str(BINDER / "postBuild")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert post.returncode == 0, f"postBuild failed:\n{post.stdout[-2000:]}\n{post.stderr[-4000:]}"
    assert "onnx-workbench" in post.stdout and "installed" in post.stdout
    settings = tmp_path / "home/.jupyter/lab/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    assert '"fetchNews": "false"' in settings.read_text()
