"""trtkit.runtime as a package: it imports without TensorRT or a driver, under its box name too, on Python 3.8."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


RUNTIME_DIR = REPO / "toolkit" / "runtime"


RUNTIME_FILES = sorted(RUNTIME_DIR.glob("*.py"))


def test_import_needs_neither_tensorrt_nor_a_driver():
    code = ("import sys; sys.modules['tensorrt'] = None\n"   # None: any import of tensorrt fails
            "import trtkit.runtime as r\n"
            "assert r.cuda._library == [], 'libcuda was loaded at import'\n"
            "print(r.Engine.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Engine"


def test_the_package_imports_under_its_box_name(tmp_path):
    """As trtkit ships it into a container, beside a script: trtkit_runtime, no trtkit package around it."""
    shutil.copytree(RUNTIME_DIR, tmp_path / "trtkit_runtime", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import trtkit_runtime as r; print(r.Engine.__module__, r.cuda.__name__, r.select_profile.__module__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["trtkit_runtime.engine", "trtkit_runtime.cuda", "trtkit_runtime.shapes"]


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: p.name)
def test_parses_as_python_38(path):
    import ast
    tree = ast.parse(path.read_text(), feature_version=(3, 8))
    futures = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "__future__"]
    assert futures and futures[0].names[0].name == "annotations", "annotations must stay unevaluated on 3.8"
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported <= set(sys.stdlib_module_names) | {"numpy", "tensorrt"}, imported


def test_compiles_with_a_real_python_38_when_there_is_one(tmp_path):
    found = sorted(Path.home().glob(".pyenv/versions/3.8*/bin/python3.8")) + [shutil.which("python3.8")]
    python38 = next((p for p in found if p and ".pyenv/shims" not in str(p)), None)
    if python38 is None:
        pytest.skip("no Python 3.8 on this machine")
    for path in RUNTIME_FILES:
        out = subprocess.run([str(python38), "-m", "py_compile", str(path)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path)})
        assert out.returncode == 0, out.stderr
