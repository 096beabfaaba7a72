"""trtkit bench: the artifacts against Keras, side by side, in the same container and device."""
import json
import shutil
from pathlib import Path

from toolkit import builder, options, report
from toolkit.console import print_json, user_errors
from toolkit.errors import InvalidModel
from toolkit.manifest import MANIFEST_NAME
from toolkit.modelfile import resolve_model
from toolkit.plan import BuildPlan, image_reference, parse_gpus


@user_errors
def bench(
    target: options.ModelArg,
    tag: options.Tag,
    image: options.Image = options.DEFAULTS["image"],
    gpus: options.Gpus = options.DEFAULTS["gpus"],
    batch: options.Batches = options.DEFAULTS["batches"],
    iterations: options.Iterations = options.DEFAULTS["iterations"],
    warmup: options.Warmup = options.DEFAULTS["warmup"],
    json_output: options.Json = False,
) -> None:
    """Time Keras (predict and direct call) and every artifact of a build, per batch size.

    TARGET is a build's output folder (with trtkit.json), or a model: then it is built first
    (default target, into ./trtkit-out/<name>) and benchmarked.
    """
    settings = options.bench_settings(batch, iterations, warmup)
    image_ref = image_reference(image, tag)
    if (target / MANIFEST_NAME).is_file():
        result = _bench_build(target, image_ref, parse_gpus(gpus), settings)
    else:
        model = resolve_model(target)
        plan = BuildPlan(model=model, image=image_ref, gpus=parse_gpus(gpus), out_dir=Path("trtkit-out") / model.name,
                         bench=settings)
        result = builder.build(plan).manifest["bench"]
    if json_output:
        print_json(result)
        return
    report.print_table(report.bench_section(result))


def _bench_build(out_dir: Path, image_ref: str, gpus, settings: dict) -> dict:
    manifest = json.loads((out_dir / MANIFEST_NAME).read_text())
    if not manifest.get("names"):
        raise InvalidModel(f"{out_dir / MANIFEST_NAME} has no node names: rebuild with this trtkit version")
    plan = BuildPlan(model=resolve_model(Path(manifest["model"]["path"])), image=image_ref, gpus=gpus, bench=settings)
    session = builder.open_session(plan)
    with builder.scratch_work() as work:
        for artifact in manifest["artifacts"]:
            shutil.copy2(out_dir / artifact["name"], work / "artifacts" / artifact["name"])
        (work / "io.json").write_text(json.dumps(manifest["names"]))
        record = builder.run_pipeline(session, plan, manifest["target"]["chosen"], work, mode="bench")
    return record.bench
