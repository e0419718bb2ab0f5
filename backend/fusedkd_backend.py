"""fusedkd's PEP 517 build backend: scikit-build-core's (scikit_build_core.build), re-exported.

The wrapper exists for one reason: with `pip install --no-build-isolation .` (the recommended
command, which builds against the torch already installed) the build runs in the current Python
environment, and a missing build prerequisite used to surface as a bare ModuleNotFoundError or a
CMake failure. Here every hook first checks the prerequisites and, when one is missing, prints
the list and how to install them, then exits with status 1. pyproject.toml points at this module
through `backend-path`; nothing else changes: the hooks are scikit-build-core's own.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
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


def _backend(need_cmake: bool = True):
    problems = _missing(need_cmake)
    if problems:
        print(_PREREQUISITES.format(problems="; ".join(problems), python=sys.executable), file=sys.stderr)
        raise SystemExit(1)
    from scikit_build_core import build

    return build


# The PEP 517 / PEP 660 hooks, each scikit-build-core's after the check.
def get_requires_for_build_wheel(config_settings=None):
    return _backend(need_cmake=False).get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings=None):
    return _backend(need_cmake=False).get_requires_for_build_sdist(config_settings)


def get_requires_for_build_editable(config_settings=None):
    return _backend(need_cmake=False).get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _backend().prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _backend().prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _backend().build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _backend().build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    return _backend().build_sdist(sdist_directory, config_settings)
