"""Option groups shared by the commands (typer Annotated aliases)."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from toolkit.plan import DEFAULT_IMAGE

ModelArg = Annotated[Path, typer.Argument(help="Keras 2 .h5, Keras 3 .keras, or a SavedModel folder.",
                                          show_default=False)]
Tag = Annotated[str, typer.Option("--tag", help="Container tag, e.g. 19.07-py3. Required: no silent 'latest'.",
                                  show_default=False)]
Image = Annotated[str, typer.Option("--image", help="Container repository.")]
Gpus = Annotated[str, typer.Option("--gpus", help="auto (GPUs when the engine has the NVIDIA runtime), all, none, or indices like 0,1.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (logs go to stderr).")]
Batches = Annotated[str, typer.Option("--batch", help="Batch sizes to time, comma-separated.")]
Iterations = Annotated[int, typer.Option("--iterations", min=1, help="Timed runs per batch size.")]
Warmup = Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")]
Shapes = Annotated[Optional[list[str]], typer.Option("--shapes", help="NAME:MIN/OPT/MAX batch sizes or full shapes (64x11x192); repeat per input.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the random sample inputs.")]

DEFAULTS = {"image": DEFAULT_IMAGE, "gpus": "auto", "batches": "1,64,1024", "iterations": 50, "warmup": 5}


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated batch sizes like 1,64,1024, got {text!r}") from None
    if not batches or min(batches) < 1:
        raise typer.BadParameter("batch sizes must be positive integers")
    return batches


def bench_settings(batches: str, iterations: int, warmup: int) -> dict:
    return {"batches": parse_batches(batches), "iterations": iterations, "warmup": warmup}
