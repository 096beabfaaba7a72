"""trtkit check: can this host load a built engine? Asked before deployment, answered without running it."""
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from .. import image_ref, options, session
from ..console import out, plain, print_json, user_errors
from ..exported import MANIFEST_NAME, manifest_field, read_manifest
from ..modelfile import resolve_model
from ..plan import DEFAULT_IMAGE, BuildPlan


@user_errors
def check(
    output: Annotated[Path, typer.Argument(help="The output folder of `trtkit build --target engine`.",
                                           show_default=False)],
    tag: options.Tag = None,
    image: Annotated[Optional[str], typer.Option("--image", help="The deployment image's repository. "
                     "Default: the image the engine was built in (with --tag: nvcr.io/nvidia/tensorrt).")] = None,
    gpus: options.Gpus = options.DEFAULTS["gpus"],
    memory: options.Memory = None,
    timeout: options.Timeout = options.DEFAULTS["timeout"],
    json_output: options.Json = False,
) -> None:
    """Whether OUT's engine loads with the TensorRT of IMAGE:TAG on this host's GPU, and what to rebuild if not.

    A different TensorRT version is found without a GPU; the GPU itself is checked by loading the engine
    (no inference) in a container that gets it.
    """
    model = resolve_model(output)   # first, so a missing OUT exits 10 as it does for build and bench
    manifest, _ = read_manifest(output / MANIFEST_NAME)
    reference = image_ref.image_reference(image or DEFAULT_IMAGE, tag) if tag or image else \
        manifest_field(manifest, output / MANIFEST_NAME, "image.reference")
    plan = BuildPlan(model=model, image=reference, gpus=options.parse_gpus(gpus),
                     **options.box_settings(False, memory, timeout))
    outcome = session.check(plan, output, manifest)
    if json_output:
        print_json({"loadable": True, "verdict": outcome.verdict, "built": vars(outcome.built),
                    "here": vars(outcome.here), "image": reference})
        return
    # The manifest's and the container's strings are text, never markup or escapes (console.plain).
    table = Table(title=Text(plain(f"{output / 'model.plan'} in {reference}")), title_justify="left")
    for header in ("", "built", "here"):
        table.add_column(header)
    for field in ("tensorrt", "gpu", "compute_capability"):
        table.add_row(field, *(Text(plain(getattr(record, field))) for record in (outcome.built, outcome.here)))
    out.print(table)
    out.print(Text(plain(outcome.verdict)))
