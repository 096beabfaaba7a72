"""trtkit inspect: the node names the origin post had to guess, found in the container."""
import tempfile
from pathlib import Path

from rich.table import Table

from toolkit import builder, options
from toolkit.console import out, print_json, user_errors
from toolkit.modelfile import resolve_model
from toolkit.plan import BuildPlan, GpuRequest, image_reference
from toolkit.toolchain import cache_dir


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
    with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
        (Path(work) / "artifacts").mkdir()
        record = builder.run_pipeline(session, plan, "onnx", Path(work), mode="inspect")
    names = {**record.names, "model": str(plan.model.path), "versions": record.versions}
    if json_output:
        print_json(names)
        return
    table = Table(title=f"{plan.model.path.name}: {names['params']} parameters", title_justify="left")
    for header in ("role", "Keras name", "TF tensor", "frozen graph", "after import_graph_def", "shape", "dtype"):
        table.add_column(header)
    for role in ("inputs", "outputs"):
        for t in names[role]:
            shape = "×".join("N" if d is None else str(d) for d in t.get("shape", [])) or "-"
            table.add_row(role[:-1], t["name"], t["keras_tensor"], t["frozen"], t["imported"], shape, t.get("dtype", "-"))
    out.print(table)
