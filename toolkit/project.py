"""The project file: trtkit.toml (or [tool.trtkit] in pyproject.toml) lists the models to build, and how.

    image = "nvcr.io/nvidia/tensorrt"
    tags = ["24.05-py3", "25.01-py3"]         # the top level: every model's defaults
    targets = ["onnx", "engine"]
    gpus = "0,1"

    [models.origin]
    path = "models/origin_lstm.h5"            # relative paths are relative to the project file
    precisions = ["fp32", "fp16"]
    shapes = ["lstm_1_input:1/1024/100000"]
    sample_data = "data/sample.npz"

Keys are the options of `trtkit build` as their Python names (sample_data for --sample-data), except
the three matrix axes, which take a list: tags, targets, precisions. A model's table overrides the top
level, the command line overrides both. gpus, jobs and out concern the whole run, so only the top level
sets them. Values are checked by the build command's own parameters (`convert`); unknown keys are
usage errors that name the key and its table.
"""
import difflib
import itertools
import re
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from .modelfile import safe_name

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PROJECT_NAME = "trtkit.toml"
PYPROJECT_NAME = "pyproject.toml"
AXES = {"tag": "tags", "target": "targets", "precision": "precisions"}   # build option -> its list in the file
RUN_WIDE = {"gpus", "jobs", "out"}
PATH_KEYS = {"path", "sample_data", "calib_data", "timing_cache", "out", "triton_repo"}   # against the project file
DEFAULT_OUT = "trtkit-out"
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Convert = Callable[[str, Any], Any]     # (build option, value from the file) -> the option's value, or BadParameter


@dataclass(frozen=True)
class Project:
    path: Path
    top: dict[str, Any]                  # the top-level keys (paths made absolute)
    models: dict[str, dict[str, Any]]    # name -> its table (paths made absolute)
    in_pyproject: bool = False

    def where(self, model: str | None = None) -> str:
        return _where(self.path, self.in_pyproject, model)


@dataclass(frozen=True)
class Cell:
    """One build of the matrix: labels as the status lines and the table show them, and its option values."""
    model: str
    tag: str
    target: str
    precision: str
    values: dict[str, Any]      # every option of `trtkit build` (model and out included)


@dataclass(frozen=True)
class Matrix:
    top: dict[str, Any]         # the run's options: the command line's defaults, the top level, then what was given
    cells: list[Cell]


def find(explicit: Path | None, folder: Path) -> Path | None:
    """--project, else ./trtkit.toml, else ./pyproject.toml when it has a [tool.trtkit] table."""
    if explicit is not None:
        return explicit
    if (folder / PROJECT_NAME).is_file():
        return folder / PROJECT_NAME
    pyproject = folder / PYPROJECT_NAME
    return pyproject if pyproject.is_file() and _tool_table(_read(pyproject)) is not None else None


def load(path: Path, options: Collection[str]) -> Project:
    """The project at path; options are the build options a file may set (the axes by their singular name)."""
    path = path.absolute()
    document = _read(path)
    in_pyproject = path.name == PYPROJECT_NAME
    if in_pyproject:
        document = _tool_table(document)
        if not isinstance(document, dict):
            raise typer.BadParameter(f"{path} has no [tool.trtkit] table")
    file_keys = (set(options) - set(AXES)) | set(AXES.values())
    top = _checked(document, file_keys | {"models"}, _where(path, in_pyproject))
    models = top.pop("models", {})
    if not isinstance(models, dict) or not models:
        raise typer.BadParameter(f"{_where(path, in_pyproject)} lists no models: add a [models.NAME] table "
                                 "with a path")
    tables = {}
    for name, table in models.items():
        where = _where(path, in_pyproject, name)
        if not _MODEL_NAME.fullmatch(name) or not isinstance(table, dict):
            raise typer.BadParameter(f"{where}: a model is a table named with letters, digits, '.', '_' and '-'")
        tables[name] = _checked(table, (file_keys - RUN_WIDE) | {"path"}, where, RUN_WIDE)
        if not isinstance(table.get("path"), str):
            raise typer.BadParameter(f"{where} has no path (the model file or folder, as a string)")
    return Project(path, _absolute(top, path.parent), {n: _absolute(t, path.parent) for n, t in tables.items()},
                   in_pyproject)


def expand(project: Project, defaults: dict[str, Any], given: dict[str, Any], convert: Convert) -> Matrix:
    """Every build the project lists, models x tags x targets x precisions. defaults: the command line's
    values when nothing was given; given: the options given on the command line, which override the file."""
    top = {**defaults, **_converted(project.top, convert, project.where())}
    run = {**top, **given}
    root = Path(run["out"]).expanduser() if run["out"] else project.path.parent / DEFAULT_OUT   # --out=~/x
    cells = []
    for name, table in project.models.items():
        settings = {**top, **_converted(table, convert, project.where(name)), **given}
        axes = [[given[option]] if option in given else settings.get(plural, [defaults[option]])
                for option, plural in AXES.items()]
        for tag, target, precision in itertools.product(*axes):
            labels = (tag or "pinned", target or "auto", precision)
            values = {**settings, **dict(zip(AXES, (tag, target, precision))), "model": Path(table["path"]),
                      "out": root / name / safe_name("-".join(labels))}
            cells.append(Cell(name, *labels, values={k: v for k, v in values.items() if k not in AXES.values()}))
    return Matrix(run, cells)


def _where(path: Path, in_pyproject: bool, model: str | None = None) -> str:
    """A table as a person finds it in the file, for error messages."""
    parts = ["tool.trtkit"] * in_pyproject + [f"models.{model}"] * bool(model)
    return f"[{'.'.join(parts)}] in {path}" if parts else f"the top level of {path}"


def _tool_table(pyproject: dict) -> Any:
    """What [tool.trtkit] holds, or None; `tool` may be anything in a file written by hand."""
    tool = pyproject.get("tool")
    return tool.get("trtkit") if isinstance(tool, dict) else None


def _read(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise typer.BadParameter(f"cannot read {path}: {e}") from None


def _checked(table: dict, allowed: set[str], where: str, top_only: Collection[str] = ()) -> dict:
    for key in table:
        if key in top_only:
            raise typer.BadParameter(f"{key!r} in {where}: only the top level sets it (it concerns the whole run)")
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            raise typer.BadParameter(f"unknown key {key!r} in {where}" + (f" (did you mean {close[0]!r}?)"
                                                                           if close else ""))
    return dict(table)


def _absolute(table: dict, folder: Path) -> dict:
    return {key: str(folder / Path(value).expanduser()) if key in PATH_KEYS and isinstance(value, str) else value
            for key, value in table.items()}


def _converted(table: dict, convert: Convert, where: str) -> dict:
    """The table's values as the build options take them; an axis becomes a list without repeats."""
    options = {plural: option for option, plural in AXES.items()}
    result = {}
    for key, value in table.items():
        if key == "path":
            continue
        try:
            if key in options:
                items = value if isinstance(value, list) else [value]
                if not items:
                    raise typer.BadParameter("the list is empty")
                result[key] = list(dict.fromkeys(convert(options[key], item) for item in items))
            else:
                result[key] = convert(key, value)
        except typer.BadParameter as e:
            raise typer.BadParameter(e.message, param_hint=f"{key!r} in {where}") from None
    return result
