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

from .. import matrix, options, project, report, session
from ..console import print_json, user_errors
from ..contract import contract
from ..lock import LOCK_NAME
from ..modelfile import resolve_model, safe_name
from ..plan import BuildPlan

# The choices come from the contract, the one list both sides share.
Target = Enum("Target", {name: name for name in contract.TARGETS}, type=str)  # type: ignore[misc]
Precision = Enum("Precision", {name: name for name in contract.PRECISIONS}, type=str)  # type: ignore[misc]
IoPrecision = Enum("IoPrecision", {name: name for name in contract.IO_PRECISIONS}, type=str)  # type: ignore[misc]
# Options of one invocation, which a project file does not set.
COMMAND_LINE_ONLY = ("model", "project_file", "force", "locked", "json_output")


@user_errors
def build(
    ctx: typer.Context,
    model: Annotated[Optional[Path], typer.Argument(
        help="Keras 2 .h5, Keras 3 .keras, a SavedModel folder, an .onnx file, or the output folder of an earlier "
             "trtkit build (two-stage builds). Leave it out to build every model the project file lists.",
        show_default=False)] = None,
    tag: options.Tag = None,
    image: options.Image = options.DEFAULTS["image"],
    target: Annotated[Optional[Target], typer.Option(help="Artifact to build. Default: engine when a GPU and TensorRT are there, else onnx.")] = None,
    precision: Annotated[Precision, typer.Option(help="fp32 is strict FP32 (TF32 off unless --tf32).")] = Precision("fp32"),
    io_precision: Annotated[IoPrecision, typer.Option("--io-precision", help="Type of the engine's float inputs and outputs. fp16 halves the bytes copied to and from the GPU, for data that is float16 already: trtkit.runtime takes float32 too, but converts it on the host, which costs more than the copy saves (docs/runtime.md). Needs TensorRT's Python API.")] = IoPrecision("fp32"),
    tf32: Annotated[bool, typer.Option("--tf32", help="Allow TF32 in fp32 engines (faster, errors near 1e-4).")] = False,
    shapes: options.Shapes = None,
    gpus: options.Gpus = options.DEFAULTS["gpus"],
    out: Annotated[Optional[Path], typer.Option(help="Output folder. Default: ./trtkit-out/<model name>/; for a project, the folder of its builds, OUT/<model>/<tag>-<target>-<precision> (default: trtkit-out beside the project file).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when a finished build matches, and replace "
                                        "--out even when it holds files trtkit did not write.")] = False,
    sample_data: Annotated[Optional[Path], typer.Option(help=".npy (one input) or .npz (by input name) to verify with.", exists=True, dir_okay=False)] = None,
    calib_data: Annotated[Optional[Path], typer.Option(help="INT8 calibration data: .npy/.npz or a folder of them.", exists=True)] = None,
    timing_cache: Annotated[Optional[Path], typer.Option(help="A TensorRT timing cache to replay, e.g. an earlier build's timing.cache: the engine picks the same tactics wherever TensorRT allows.", exists=True, dir_okay=False)] = None,
    strict_timing_cache: Annotated[bool, typer.Option("--strict-timing-cache", help="Fail the build when a tactic is missing from --timing-cache instead of timing it anew.")] = False,
    typical_batch: Annotated[Optional[int], typer.Option(help="The batch size your application sends most: the engine's profile is tuned for it (its OPT) where --shapes does not say.", min=1, max=2**31 - 1, show_default=False)] = None,
    exact_batches: Annotated[Optional[str], typer.Option("--exact-batches", help="Batch sizes your application sends exactly, comma-separated (at most 8): each gets an optimization profile of its own beside the full range, which trtkit.runtime picks for it. On an H100 (TensorRT 8.6) the origin LSTM took 17-25% less GPU time at batch 1 and 64 (docs/runtime.md); each adds a profile to build.", show_default=False)] = None,
    opt_level: Annotated[int, typer.Option("--opt-level", help="TensorRT's builder optimisation level, 0-5 (TensorRT 8.6 and newer): 5 builds far longer for little, 0 runs slower.", min=0, max=5)] = 3,
    unroll_lstm: Annotated[bool, typer.Option("--unroll-lstm/--keep-lstm", help="Export LSTMs of a fixed sequence length unrolled into MatMuls and pointwise ops instead of ONNX's LSTM node. On TensorRT 8.6 (H100, FP16) the origin LSTM's engine then ran 1.36x slower at batch 1 but was 8x closer to Keras (docs/runtime.md).")] = False,
    atol: Annotated[Optional[float], typer.Option(help="Largest absolute error allowed against Keras.")] = None,
    workspace: Annotated[Optional[str], typer.Option(help="TensorRT workspace limit, e.g. 2G.")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset of the export.", min=13, max=18)] = 17,
    bench: Annotated[bool, typer.Option("--bench", help="Benchmark the artifacts against Keras after the build.")] = False,
    batch: options.Batches = options.DEFAULTS["batches"],
    iterations: options.Iterations = options.DEFAULTS["iterations"],
    warmup: options.Warmup = options.DEFAULTS["warmup"],
    seed: options.Seed = 0,
    trust_model: options.TrustModel = False,
    memory: options.Memory = None,
    timeout: options.Timeout = options.DEFAULTS["timeout"],
    disable_tactic_sources: options.DisableTactics = None,
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
    image_ref = options.image_reference(v["image"], v["tag"])
    if v["strict_timing_cache"] and not v["timing_cache"]:
        raise typer.BadParameter("--strict-timing-cache needs --timing-cache FILE: the cache whose tactics to replay")
    bench = options.bench_settings(v["batch"], v["iterations"], v["warmup"])   # checked even without --bench
    return BuildPlan(
        model=resolve_model(v["model"]), image=image_ref, target=v["target"], precision=v["precision"],
        tf32=v["tf32"], shapes=options.parse_shapes(v["shapes"] or []), gpus=options.parse_gpus(v["gpus"]),
        out_dir=v["out"], force=v["force"], sample_data=v["sample_data"], calib_data=v["calib_data"],
        atol=options.finite_number(v["atol"], "--atol", 0.0, 1e6),
        workspace=options.parse_size(v["workspace"], "workspace"), opset=v["opset"],
        bench=bench if v["bench"] else None,
        seed=v["seed"], disabled_tactic_sources=options.parse_tactic_sources(v["disable_tactic_sources"]),
        triton_repo=v["triton_repo"], locked=Path(LOCK_NAME).absolute() if v["locked"] else None,
        timing_cache=v["timing_cache"], strict_timing_cache=v["strict_timing_cache"],
        typical_batch=v["typical_batch"], exact_batches=tuple(options.parse_exact_batches(v["exact_batches"])),
        optimization_level=v["opt_level"], unroll_lstm=v["unroll_lstm"], io_precision=v["io_precision"],
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
