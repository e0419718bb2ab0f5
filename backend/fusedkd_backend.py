"""fusedkd's PEP 517 build backend: scikit-build-core's (scikit_build_core.build), behind two additions.

1. Prerequisites: with `pip install --no-build-isolation .` the build runs in the current Python
   environment, and a missing build prerequisite used to surface as a bare ModuleNotFoundError or a
   CMake failure. Every hook first checks them and, when one is missing, prints the list and how to
   install them, then exits with status 1.
2. The installed torch, in isolated builds too: `torch` is not a static build requirement. When the
   build environment has no torch (an isolated `pip install .`), the backend looks for a compatible
   one (>= 2.10, the stable-ABI floor) in the environment that asked for the build — the interpreter in
   FUSEDKD_TORCH_PYTHON, $VIRTUAL_ENV's, or this interpreter with pip's isolation path removed — and,
   when it finds one, builds against it (CMake gets FUSEDKD_TORCH_PYTHON) instead of asking for a
   second torch to be downloaded; only when none is found is "torch>=2.10" added to the requirements.

pyproject.toml points at this module through `backend-path`; the hooks are otherwise scikit-build-core's.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys

_PREREQUISITES = """\
fusedkd: cannot build: {problems}.

Building fusedkd from source needs, in the Python environment that runs the build (with
`pip install --no-build-isolation .` that is the current one, {python}):
  - scikit-build-core >= 0.10   pip install "scikit-build-core>=0.10"
  - torch >= 2.10               the torch the package will run with (its headers and libtorch_cpu)
  - CMake >= 3.24 and a build tool (Ninja or make): system packages or `pip install cmake ninja`
  - a C++17 compiler (GCC >= 9 or Clang >= 10); nvcc is optional (CUDA kernels when found)

Recommended:
  pip install "scikit-build-core>=0.10" cmake ninja     # once, next to torch
  pip install --no-build-isolation .                     # builds against the installed torch
See docs/build.md."""


def _version_tuple(version: str) -> tuple:
    parts = []
    for p in version.split("+")[0].split("."):
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _missing(need_cmake: bool) -> list:
    problems = []
    if importlib.util.find_spec("scikit_build_core") is None:
        problems.append("scikit-build-core is not installed")
    else:
        v = importlib.metadata.version("scikit-build-core")
        if _version_tuple(v) < (0, 10):
            problems.append(f"scikit-build-core {v} is older than 0.10")
    if importlib.util.find_spec("torch") is None:
        if _host_torch_python() is None:
            problems.append("torch is not installed")
    else:
        try:
            v = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:  # e.g. a source checkout on the path
            v = None
        if v is not None and _version_tuple(v) < (2, 10):
            problems.append(f"torch {v} is older than 2.10")
    # get_requires_* may still add cmake/ninja to an isolated build environment: checked later.
    if need_cmake and shutil.which("cmake") is None and importlib.util.find_spec("cmake") is None:
        problems.append("cmake is not on PATH")
    return problems


_TORCH_FLOOR = (2, 10)
_PROBE = "import torch, sys; sys.stdout.write(torch.__version__)"
_probed: dict = {}


def _torch_version_of(python: str):
    """torch.__version__ as `python` sees it outside any build isolation (PYTHONPATH, through which pip
    hides the environment's site-packages, removed), or None."""
    if python in _probed:
        return _probed[python]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME")}
    try:
        out = subprocess.run([python, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
        version = out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        version = None
    _probed[python] = version
    return version


def _host_torch_python():
    """An interpreter, outside this (build) environment, whose torch is >= 2.10; None when the build
    environment has torch itself or none is found. Candidates in order: FUSEDKD_TORCH_PYTHON,
    $VIRTUAL_ENV/bin/python, this interpreter (an isolated pip build runs the environment's own python
    with the environment hidden from sys.path)."""
    if importlib.util.find_spec("torch") is not None:
        return None
    candidates = []
    if os.environ.get("FUSEDKD_TORCH_PYTHON"):
        candidates.append(os.environ["FUSEDKD_TORCH_PYTHON"])
    if os.environ.get("VIRTUAL_ENV"):
        candidates.append(os.path.join(os.environ["VIRTUAL_ENV"], "bin", "python"))
    candidates.append(sys.executable)
    for python in candidates:
        version = _torch_version_of(python)
        if version is not None and _version_tuple(version) >= _TORCH_FLOOR:
            return python
    return None


def _with_torch(config_settings):
    """config_settings plus the CMake define that points the build at the host's torch, when that is
    the torch to build against."""
    python = _host_torch_python()
    if python is None:
        return config_settings
    settings = dict(config_settings or {})
    settings.setdefault("cmake.define.FUSEDKD_TORCH_PYTHON", python)
    print(f"fusedkd: building against the torch {_torch_version_of(python)} installed for {python} "
          "(no second torch in the build environment)", file=sys.stderr)
    return settings


def _requires(hook, config_settings):
    requires = list(hook(config_settings))
    if importlib.util.find_spec("torch") is None and _host_torch_python() is None:
        requires.append("torch>=2.10")  # none to reuse: the build environment gets its own
    return requires


def _backend(need_cmake: bool = True):
    problems = _missing(need_cmake)
    if problems:
        print(_PREREQUISITES.format(problems="; ".join(problems), python=sys.executable), file=sys.stderr)
        raise SystemExit(1)
    from scikit_build_core import build

    return build


# The PEP 517 / PEP 660 hooks, each scikit-build-core's after the check.
def get_requires_for_build_wheel(config_settings=None):
    return _requires(_backend(need_cmake=False).get_requires_for_build_wheel, config_settings)


def get_requires_for_build_sdist(config_settings=None):
    return _backend(need_cmake=False).get_requires_for_build_sdist(config_settings)


def get_requires_for_build_editable(config_settings=None):
    return _requires(_backend(need_cmake=False).get_requires_for_build_editable, config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _backend().prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _backend().prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _backend().build_wheel(wheel_directory, _with_torch(config_settings), metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _backend().build_editable(wheel_directory, _with_torch(config_settings), metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    return _backend().build_sdist(sdist_directory, config_settings)
