"""trtkit bench: the artifacts against Keras, side by side, in the same container and device."""
from pathlib import Path

from .. import image_ref, options, report, session
from ..console import print_json, user_errors
from ..errors import StepFailed
from ..exported import MANIFEST_NAME, read_manifest
from ..modelfile import resolve_model
from ..plan import BuildPlan


@user_errors
def bench(
    target: options.ModelArg,
    tag: options.Tag = None,
    image: options.Image = options.DEFAULTS["image"],
    gpus: options.Gpus = options.DEFAULTS["gpus"],
    batch: options.Batches = options.DEFAULTS["batches"],
    iterations: options.Iterations = options.DEFAULTS["iterations"],
    warmup: options.Warmup = options.DEFAULTS["warmup"],
    trust_model: options.TrustModel = False,
    memory: options.Memory = None,
    timeout: options.Timeout = options.DEFAULTS["timeout"],
    json_output: options.Json = False,
) -> None:
    """Time Keras (predict and direct call) and every artifact of a build, per batch size.

    TARGET is a build's output folder (with trtkit.json), or a model: then it is built first
    (default target, into ./trtkit-out/<name>) and benchmarked.
    """
    common = dict(image=image_ref.image_reference(image, tag), gpus=options.parse_gpus(gpus),
                  bench=options.bench_settings(batch, iterations, warmup),
                  **options.box_settings(trust_model, memory, timeout))
    if (target / MANIFEST_NAME).is_file():
        manifest, _ = read_manifest(target / MANIFEST_NAME)
        plan = BuildPlan(model=resolve_model(Path(manifest["model"]["path"])), **common)
        result = session.bench_build(plan, target, manifest)
        earlier = session.earlier_bench(manifest)
    else:
        plan = BuildPlan(model=resolve_model(target), **common)
        built, earlier = session.build(plan).manifest["bench"], None
        if built is None:
            raise StepFailed("the build finished without its bench results")
        result = built
    if json_output:
        print_json({**result, "earlier": {"build": str(earlier[0]), **earlier[1]} if earlier else None})
        return
    report.print_table(report.bench_section(result))
    if earlier:
        report.print_table(report.bench_section(earlier[1], f"stored by the earlier build {earlier[0]}"))

