"""backend/fusedkd_backend.py: an isolated build reuses the installed torch instead of requiring a second
one, and asks for torch only when no compatible one is installed (docs/build.md, "pip")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in a child whose sys.path hides every site-packages, as pip's build isolation does: torch is not
# importable there, but the same interpreter outside the isolation has it.
_ISOLATED = r"""
import json, sys
sys.path = [p for p in sys.path if "site-packages" not in p and "dist-packages" not in p]
sys.path.insert(0, {backend!r})
import importlib.util
import fusedkd_backend as b
assert importlib.util.find_spec("torch") is None
if {no_host}:
    b._torch_version_of = lambda python: None
settings = b._with_torch({{}})
print(json.dumps(dict(host=b._host_torch_python(), requires=b._requires(lambda cs: ["scikit-build-core"], None),
                      settings=settings)))
"""


def _run(no_host: bool) -> dict:
    code = _ISOLATED.format(backend=os.path.join(ROOT, "backend"), no_host=no_host)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "FUSEDKD_TORCH_PYTHON")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_isolated_build_reuses_the_installed_torch():
    got = _run(no_host=False)
    assert got["host"] == sys.executable
    assert got["requires"] == ["scikit-build-core"]  # no second torch
    assert got["settings"] == {"cmake.define.FUSEDKD_TORCH_PYTHON": sys.executable}


def test_isolated_build_without_an_installed_torch_requires_one():
    got = _run(no_host=True)
    assert got["host"] is None
    assert got["requires"] == ["scikit-build-core", "torch>=2.10"]
    assert got["settings"] == {}
