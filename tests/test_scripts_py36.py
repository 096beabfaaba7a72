"""The in-container scripts must run on Python 3.6 (19.07's) up to 3.12."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONTAINER_PY = sorted((REPO / "scripts").rglob("*.py")) + sorted((REPO / "images").rglob("*.py"))
NEWER_MODULES = {"dataclasses", "contextvars", "importlib.metadata", "importlib.resources", "graphlib", "zoneinfo",
                 "tomllib"}
NEWER_KEYWORDS = {"capture_output", "text"}   # subprocess.run/Popen arguments added in 3.7


@pytest.mark.parametrize("path", CONTAINER_PY, ids=lambda p: str(p.relative_to(REPO)))
def test_parses_as_python_36(path):
    source = path.read_text()
    tree = ast.parse(source, filename=str(path), feature_version=(3, 6))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module != "__future__" or all(a.name != "annotations" for a in node.names), path
            assert node.module not in NEWER_MODULES, f"{path}: {node.module} is newer than 3.6"
        if isinstance(node, ast.Import):
            assert not {a.name for a in node.names} & NEWER_MODULES, path
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("run", "Popen", "check_output"):
            assert not {k.arg for k in node.keywords} & NEWER_KEYWORDS, f"{path}:{node.lineno}: 3.7+ argument"
        if isinstance(node, ast.NamedExpr):
            pytest.fail(f"{path}:{node.lineno}: walrus operator")


def test_there_are_scripts_to_check():
    assert len(CONTAINER_PY) >= 5
