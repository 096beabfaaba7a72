"""The in-container scripts must run on Python 3.6 (19.07's) up to 3.12.

Every file parses as Python 3.6, so each step still loads in an old image to say what it cannot do. The
library calls, arguments and annotations each file uses are checked by vermin: Python 3.6's, except in
ENGINE_ONLY, whose code runs only in images with TensorRT 8 or newer (the host builds engines only there),
which all have Python 3.8. probe.py, tftrt.py, engine_check.py and the bench load in every image, so what they
import as they load is held to 3.6 too (test_engine_only_modules_load_only_where_tensorrt_8_is).
"""
import ast
from pathlib import Path

import pytest
import vermin

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
CONTAINER_PY = sorted(SCRIPTS.rglob("*.py")) + sorted((REPO / "images").rglob("*.py"))
ENGINE_ONLY = {"trtkit_steps.engine", "trtkit_steps.trt.polygraphy_api", "trtkit_steps.trt.runner"}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SCRIPTS).with_suffix("").parts) if path.is_relative_to(SCRIPTS) else path.stem


def oldest_python(path: Path) -> tuple[int, int]:
    return (3, 8) if module_name(path) in ENGINE_ONLY else (3, 6)


def newer_than(source: str, path: Path, python: tuple[int, int]) -> str:
    """vermin's lines for what the source uses that is newer than python; empty when nothing is.
    Annotations count: the steps do not use `from __future__ import annotations`, so they are evaluated."""
    config = vermin.Config()
    config.add_target(python, exact=False)
    config.set_only_show_violations(True)
    config.set_eval_annotations(True)
    config.set_show_tips(False)
    config.set_verbose(3)   # with line numbers
    return vermin.visit(source, config, str(path)).output_text().strip()


def loaded_imports(node: ast.AST):
    """The modules a module imports as it loads: not those imported inside its functions."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            yield from (alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.module:
            yield child.module
            yield from (f"{child.module}.{alias.name}" for alias in child.names)
        elif not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from loaded_imports(child)


@pytest.mark.parametrize("path", CONTAINER_PY, ids=lambda p: str(p.relative_to(REPO)))
def test_parses_as_python_36(path):
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 6))


@pytest.mark.parametrize("path", CONTAINER_PY, ids=lambda p: str(p.relative_to(REPO)))
def test_uses_nothing_newer_than_its_python(path):
    python = oldest_python(path)
    assert newer_than(path.read_text(), path, python) == "", f"{path} runs on Python {python}"


@pytest.mark.parametrize("path", [p for p in CONTAINER_PY if oldest_python(p) == (3, 6)],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_engine_only_modules_load_only_where_tensorrt_8_is(path):
    assert not set(loaded_imports(ast.parse(path.read_text()))) & ENGINE_ONLY, \
        f"{path} loads in every image: import the engine-only modules inside the functions that need them"


def test_the_guard_rejects_library_calls_and_annotations_newer_than_36(tmp_path):
    script = tmp_path / "newer.py"
    script.write_text('def f(a: list[int]):\n    return "x".removeprefix("y")\n')
    found = newer_than(script.read_text(), script, (3, 6))
    assert "L1: builtin generic type annotation (list[..]) requires !2, 3.9" in found
    assert "L2: 'str.removeprefix' member requires !2, 3.9" in found


def test_engine_only_is_held_to_38(tmp_path):
    script = tmp_path / "newer.py"
    script.write_text("import importlib.metadata\nimport graphlib\n")
    assert newer_than(script.read_text(), script, (3, 8)) == "L2 C7: 'graphlib' module requires !2, 3.9"


def test_an_import_inside_a_function_is_not_loaded():
    tree = ast.parse("from trtkit_steps.trt import gpu\ntry:\n    import json\nexcept ImportError:\n    pass\n"
                     "def run():\n    from trtkit_steps.trt.runner import EngineRunner\n")
    assert set(loaded_imports(tree)) == {"trtkit_steps.trt", "trtkit_steps.trt.gpu", "json"}


def test_there_are_scripts_to_check():
    assert len(CONTAINER_PY) >= 5 and ENGINE_ONLY <= {module_name(p) for p in CONTAINER_PY}
