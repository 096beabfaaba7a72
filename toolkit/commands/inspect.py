"""trtkit inspect: the node names the origin post had to guess, found in the container."""
from toolkit import builder, options, report
from toolkit.console import print_json, user_errors
from toolkit.modelfile import resolve_model
from toolkit.plan import BuildPlan, GpuRequest, image_reference


@user_errors
def inspect(
    model: options.ModelArg,
    tag: options.Tag,
    image: options.Image = options.DEFAULTS["image"],
    json_output: options.Json = False,
) -> None:
    """Inputs and outputs of MODEL: Keras names, TF tensor names, frozen-graph and import/ names, shapes, dtypes."""
    plan = BuildPlan(model=resolve_model(model), image=image_reference(image, tag), gpus=GpuRequest("none"))
    session = builder.open_session(plan)
    with builder.scratch_work() as work:
        record = builder.run_pipeline(session, plan, "onnx", work, mode="inspect")
    names = {**record.names, "model": str(plan.model.path), "versions": record.versions}
    if json_output:
        print_json(names)
        return
    report.print_table(report.names_section(names, f"{plan.model.path.name}: {names['params']} parameters"))
