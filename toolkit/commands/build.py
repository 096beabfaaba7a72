"""trtkit build: Keras model -> verified artifact (ONNX, frozen graph, TensorRT engine, TF-TRT)."""
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import options, report, session
from ..console import print_json, user_errors
from ..contract import contract
from ..lock import LOCK_NAME
from ..modelfile import resolve_model
from ..plan import BuildPlan

# The choices come from the contract, the one list both sides share.
Target = Enum("Target", {name: name for name in contract.TARGETS}, type=str)  # type: ignore[misc]
Precision = Enum("Precision", {name: name for name in contract.PRECISIONS}, type=str)  # type: ignore[misc]


@user_errors
def build(
    model: options.ModelArg,
    tag: options.Tag = None,
    image: options.Image = options.DEFAULTS["image"],
    target: Annotated[Optional[Target], typer.Option(help="Artifact to build. Default: engine when a GPU and TensorRT are there, else onnx.")] = None,
    precision: Annotated[Precision, typer.Option(help="fp32 is strict FP32 (TF32 off unless --tf32).")] = Precision("fp32"),
    tf32: Annotated[bool, typer.Option("--tf32", help="Allow TF32 in fp32 engines (faster, errors near 1e-4).")] = False,
    shapes: options.Shapes = None,
    gpus: options.Gpus = options.DEFAULTS["gpus"],
    out: Annotated[Optional[Path], typer.Option(help="Output folder. Default: ./trtkit-out/<model name>/")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when a finished build matches, and replace "
                                        "--out even when it holds files trtkit did not write.")] = False,
    sample_data: Annotated[Optional[Path], typer.Option(help=".npy (one input) or .npz (by input name) to verify with.", exists=True, dir_okay=False)] = None,
    calib_data: Annotated[Optional[Path], typer.Option(help="INT8 calibration data: .npy/.npz or a folder of them.", exists=True)] = None,
    timing_cache: Annotated[Optional[Path], typer.Option(help="A TensorRT timing cache to replay, e.g. an earlier build's timing.cache: the engine picks the same tactics wherever TensorRT allows.", exists=True, dir_okay=False)] = None,
    strict_timing_cache: Annotated[bool, typer.Option("--strict-timing-cache", help="Fail the build when a tactic is missing from --timing-cache instead of timing it anew.")] = False,
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
    json_output: options.Json = False,
) -> None:
    """Convert MODEL inside the IMAGE:TAG container and verify it against Keras."""
    image_ref = options.image_reference(image, tag)
    if strict_timing_cache and not timing_cache:
        raise typer.BadParameter("--strict-timing-cache needs --timing-cache FILE: the cache whose tactics to replay")
    model_ref = resolve_model(model)
    plan = BuildPlan(
        model=model_ref, image=image_ref, target=target.value if target else None,
        precision=precision.value, tf32=tf32, shapes=options.parse_shapes(shapes or []),
        gpus=options.parse_gpus(gpus), out_dir=out, force=force,
        sample_data=sample_data, calib_data=calib_data, atol=options.finite_number(atol, "--atol", 0.0, 1e6),
        workspace=options.parse_size(workspace, "workspace"), opset=opset,
        bench=options.bench_settings(batch, iterations, warmup) if bench else None, seed=seed,
        disabled_tactic_sources=options.parse_tactic_sources(disable_tactic_sources), triton_repo=triton_repo,
        locked=Path(LOCK_NAME).absolute() if locked else None,
        timing_cache=timing_cache, strict_timing_cache=strict_timing_cache,
        **options.box_settings(trust_model, memory, timeout))
    outcome = session.build(plan)
    if json_output:
        print_json({"out_dir": str(outcome.out_dir), **outcome.manifest})
    else:
        report.print_summary(outcome.manifest, outcome.out_dir)
