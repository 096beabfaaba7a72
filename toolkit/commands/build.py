"""trtkit build: Keras model -> verified artifact (ONNX, frozen graph, TensorRT engine, TF-TRT).

Without MODEL it builds what the project file lists (toolkit/project.py): one build as usual, several as a
matrix of child builds (toolkit/matrix.py). Both make their plans with plan_of, so a value from the file
meets the same checks as one from the command line.
"""
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from trtkit_steps import contract

from .. import build_options, image_ref, matrix, options, project, report, session
from ..console import print_json, user_errors
from ..lock import LOCK_NAME
from ..modelfile import resolve_model, safe_name
from ..plan import BuildPlan

Target = Enum("Target", {name: name for name in contract.TARGETS}, type=str)  # type: ignore[misc]
# Options of one invocation, which a project file does not set.
COMMAND_LINE_ONLY = ("model", "project_file", "force", "locked", "json_output")


@user_errors
@build_options.declared(after="target")
def build(
    ctx: typer.Context,
    model: Annotated[Optional[Path], typer.Argument(
        help="Keras 2 .h5, Keras 3 .keras, a SavedModel folder, an .onnx file, or the output folder of an earlier "
             "trtkit build (two-stage builds). Leave it out to build every model the project file lists.",
        show_default=False)] = None,
    tag: options.Tag = None,
    image: options.Image = options.DEFAULTS["image"],
    target: Annotated[Optional[Target], typer.Option(help="Artifact to build. Default: engine when a GPU and TensorRT are there, else onnx.")] = None,
    # here: the build options the contract declares (build_options.declared)
    gpus: options.Gpus = options.DEFAULTS["gpus"],
    out: Annotated[Optional[Path], typer.Option(help="Output folder. Default: ./trtkit-out/<model name>/; for a project, the folder of its builds, OUT/<model>/<tag>-<target>-<precision> (default: trtkit-out beside the project file).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when a finished build matches, and replace "
                                        "--out even when it holds files trtkit did not write.")] = False,
    bench: Annotated[bool, typer.Option("--bench", help="Benchmark the artifacts against Keras after the build.")] = False,
    batch: options.Batches = options.DEFAULTS["batches"],
    iterations: options.Iterations = options.DEFAULTS["iterations"],
    warmup: options.Warmup = options.DEFAULTS["warmup"],
    trust_model: options.TrustModel = False,
    memory: options.Memory = None,
    timeout: options.Timeout = options.DEFAULTS["timeout"],
    triton_repo: Annotated[Optional[Path], typer.Option(
        help="Also write a Triton model repository: DIR/<model>/config.pbtxt and DIR/<model>/1/model.plan "
             "(or model.onnx).", file_okay=False)] = None,
    locked: Annotated[bool, typer.Option("--locked", help="Use only what ./trtkit.lock names (the image digest, "
                                         "the toolchain's packages, trtkit's version); stop on any difference.")] = False,
    project_file: Annotated[Optional[Path], typer.Option(   # help is rich markup: \\[ shows a bracket
        "--project", help="Project file to build when MODEL is left out. Default: ./trtkit.toml, else \\[tool.trtkit] "
                          "in ./pyproject.toml.", exists=True, dir_okay=False, show_default=False)] = None,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", min=1, max=64, help="Builds at once in a project's matrix. Default: one per core, at most 4; "
                                      "with --gpus 0,1,... one build per GPU.", show_default=False)] = None,
    json_output: options.Json = False,
    **settings: Any,
) -> None:
    """Convert MODEL inside the IMAGE:TAG container and verify it against Keras.

    Without MODEL, build every model the project file lists, models x tags x targets x precisions; options
    given here override the file.
    """
    values = {name: _plain(value) for name, value in ctx.params.items()}
    if model is not None:
        if project_file is not None:
            raise typer.BadParameter("give MODEL or --project, not both")
        if jobs is not None:
            raise typer.BadParameter("--jobs sets how many builds of a project's matrix run at once: leave it "
                                     "out with MODEL, which is one build")
        _build_one(plan_of(values), json_output)
        return
    path = project.find(project_file, Path.cwd())
    if path is None:
        raise typer.BadParameter("give MODEL, or a project file (./trtkit.toml or --project) that lists models")
    given = {name: value for name, value in values.items()
             if getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")}
    found = project.expand(project.load(path, [name for name in values if name not in COMMAND_LINE_ONLY]),
                           values, given, partial(_convert, ctx))
    builds = [(cell, _cell_plan(cell, path)) for cell in found.cells]
    _refuse_shared_triton_folders(builds)
    if len(builds) == 1:
        _build_one(builds[0][1], json_output)
    else:
        matrix.run(builds, matrix.slots(options.parse_gpus(found.top["gpus"]), found.top["jobs"]), json_output)


def plan_of(v: dict[str, Any]) -> BuildPlan:
    """One build's plan from the values of the build command's parameters (given, defaults, or a project's)."""
    reference = image_ref.image_reference(v["image"], v["tag"])
    bench = options.bench_settings(v["batch"], v["iterations"], v["warmup"])   # checked even without --bench
    return BuildPlan(
        model=resolve_model(v["model"]), image=reference, target=v["target"], gpus=options.parse_gpus(v["gpus"]),
        out_dir=v["out"], force=v["force"], bench=bench if v["bench"] else None, triton_repo=v["triton_repo"],
        locked=Path(LOCK_NAME).absolute() if v["locked"] else None, settings=build_options.parse(v),
        **options.box_settings(v["trust_model"], v["memory"], v["timeout"]))


def _build_one(plan: BuildPlan, json_output: bool) -> None:
    outcome = session.build(plan)
    if json_output:
        print_json({"out_dir": str(outcome.out_dir), **outcome.manifest})
    else:
        report.print_summary(outcome.manifest, outcome.out_dir)


def _cell_plan(cell: project.Cell, path: Path) -> BuildPlan:
    try:
        return plan_of(cell.values)
    except typer.BadParameter as e:
        raise typer.BadParameter(f"{e.message} (model {cell.model!r} of {path})", param_hint=e.param_hint) from None


def _refuse_shared_triton_folders(builds: list[tuple[project.Cell, BuildPlan]]) -> None:
    """Builds of one model with one --triton-repo would each replace DIR/<model>, at the same time too."""
    writers: dict[Path, project.Cell] = {}
    for cell, plan in builds:
        if plan.triton_repo:
            folder = plan.triton_repo.expanduser().resolve() / safe_name(plan.model.name)
            first = writers.setdefault(folder, cell)
            if first is not cell:
                raise typer.BadParameter(
                    f"the builds {_label(first)} and {_label(cell)} would both write the Triton model folder "
                    f"{folder}: set triton_repo in a model's table of one tag, target and precision",
                    param_hint="'triton_repo'")


def _label(cell: project.Cell) -> str:
    return f"{cell.model} {cell.tag}-{cell.target}-{cell.precision}"


def _convert(ctx: typer.Context, name: str, value: Any) -> Any:
    """A value from the project file, through the option's own parameter: its type, choices and bounds."""
    param = next(p for p in ctx.command.params if p.name == name)
    if isinstance(value, dict) or param.multiple != isinstance(value, list):
        raise typer.BadParameter("expected a list" if param.multiple else "expected one value, not a list or table")
    return _plain(param.process_value(ctx, value))


def _plain(value: Any) -> Any:
    """Choices as their text, whichever way they came."""
    return value.value if isinstance(value, Enum) else value
