"""trtkit inspect: a model's input and output names in every form (Keras, TF, frozen graph), found in the container."""
from pathlib import Path
from typing import Annotated

import typer

from .. import image_ref, options, report, session
from ..console import print_json, user_errors
from ..errors import StepFailed
from ..modelfile import resolve_model
from ..plan import BuildPlan, GpuRequest


@user_errors
def inspect(
    model: Annotated[Path, typer.Argument(help="Keras 2 .h5, Keras 3 .keras or a SavedModel folder (an exported "
                                                "model already has its names in its trtkit.json).",
                                          show_default=False)],
    tag: options.Tag = None,
    image: options.Image = options.DEFAULTS["image"],
    trust_model: options.TrustModel = False,
    memory: options.Memory = None,
    timeout: options.Timeout = options.DEFAULTS["timeout"],
    json_output: options.Json = False,
) -> None:
    """Inputs and outputs of MODEL: Keras names, TF tensor names, frozen-graph and import/ names, shapes, dtypes."""
    reference = image_ref.image_reference(image, tag)
    plan = BuildPlan(model=resolve_model(model), image=reference, gpus=GpuRequest("none"),
                     **options.box_settings(trust_model, memory, timeout))
    record = session.inspect(plan)
    names = record.names
    if names is None:
        raise StepFailed("the inspect step finished without naming the model's inputs and outputs")
    if json_output:
        print_json({**names, "model": str(plan.model.path), "versions": record.versions})
        return
    report.print_table(report.names_section(names, f"{plan.model.path.name}: {names['params']} parameters"))
