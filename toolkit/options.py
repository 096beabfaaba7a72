"""The command line's options: declared once (typer Annotated aliases), parsed and validated here.

Every parser raises typer.BadParameter: a usage error (exit 2) in one line, never a traceback.
Numbers must be ASCII digits and stay within bounds, so nothing absurd reaches the container.
"""
import math
import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from trtkit_steps import contract

from .plan import DEFAULT_IMAGE, DEFAULT_TIMEOUT_S, GpuRequest

MAX_ELEMENTS = 2**40            # per input tensor: far above any real batch, far below int64 overflow

ModelArg = Annotated[Path, typer.Argument(help="Keras 2 .h5, Keras 3 .keras, a SavedModel folder, an .onnx file, "
                                          "or the output folder of an earlier trtkit build (two-stage builds).",
                                          show_default=False)]
Tag = Annotated[Optional[str], typer.Option("--tag", help="Container tag, e.g. 19.07-py3, or sha256:DIGEST. "
                                            "Required unless --image is pinned as REPO@sha256:DIGEST: no silent 'latest'.",
                                            show_default=False)]
Image = Annotated[str, typer.Option("--image", help="Container repository (or REPO@sha256:DIGEST).")]
Gpus = Annotated[str, typer.Option("--gpus", help="auto (GPUs when the engine has the NVIDIA runtime), all, none, or indices like 0,1.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (logs go to stderr).")]
Batches = Annotated[str, typer.Option("--batch", help="Batch sizes to time, comma-separated.")]
Iterations = Annotated[int, typer.Option("--iterations", help="Timed runs per batch size.")]
Warmup = Annotated[int, typer.Option("--warmup", help="Untimed runs first.")]
TrustModel = Annotated[bool, typer.Option("--trust-model", help="Load models that carry code (Lambda layers, custom "
                                          "objects): that code runs in the container. Only for models you trust.")]
Memory = Annotated[Optional[str], typer.Option("--memory", help="Memory limit of the build container, e.g. 8G. "
                                               "Default: 3/4 of the Docker host's memory.")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds a single step may take before the build stops.")]

DEFAULTS = {"image": DEFAULT_IMAGE, "gpus": "auto", "timeout": DEFAULT_TIMEOUT_S,
            "batches": ",".join(map(str, contract.BENCH_DEFAULTS["batches"])),
            "iterations": contract.BENCH_DEFAULTS["iterations"], "warmup": contract.BENCH_DEFAULTS["warmup"]}

_NUMBER = re.compile(r"[0-9]{1,12}")
_SIZE = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?)\s*([KMGT]?)i?B?", re.IGNORECASE)



def whole_number(text: str, what: str, low: int = 1, high: int = contract.MAX_BATCH) -> int:
    text = text.strip()
    if not _NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise typer.BadParameter(f"{what} must be a whole number from {low} to {high}, got {text!r}")
    return int(text)


def parse_batches(text: str) -> list[int]:
    parts = [b for b in text.split(",") if b.strip()]
    if not parts:
        raise typer.BadParameter(f"expected comma-separated batch sizes like 1,64,1024, got {text!r}")
    return [whole_number(b, "a batch size") for b in parts]


def parse_batch_set(text: str, flag: str, most: int) -> list[int]:
    """--exact-batches 1,64: distinct batch sizes, in ascending order, at most `most` of them."""
    try:
        batches = sorted(set(parse_batches(text)))
    except typer.BadParameter as e:
        raise typer.BadParameter(f"{flag}: {e.message}") from None
    if len(batches) > most:
        raise typer.BadParameter(f"{flag} takes at most {most} batch sizes (each is one more optimization profile to "
                                 f"build), got {len(batches)}")
    return batches


def bench_settings(batches: str, iterations: int, warmup: int) -> dict:
    try:
        return contract.bench_settings({"batches": parse_batches(batches), "iterations": iterations, "warmup": warmup})
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def parse_tactic_sources(text: str) -> list[str]:
    """Names as TensorRT spells them (CUBLAS, CUBLAS_LT, CUDNN, EDGE_MASK_CONVOLUTIONS, JIT_CONVOLUTIONS)."""
    names = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not names or not all(contract.NAME.match(name) for name in names):
        raise typer.BadParameter(f"expected tactic source names like CUBLAS,CUDNN; got {text!r}")
    return names


def parse_gpus(text: str) -> GpuRequest:
    text = text.strip().lower()
    if text in ("auto", "all", "none"):
        return GpuRequest(text)
    ids = tuple(part.strip() for part in text.split(","))
    if not all(re.fullmatch(r"[0-9]{1,3}", i) for i in ids):
        raise typer.BadParameter(f"expected all, none, auto or GPU indices like 0,1; got {text!r}")
    return GpuRequest("ids", ids)


def parse_shapes(specs: list[str]) -> dict[str, list]:
    """NAME:MIN/OPT/MAX, each a batch size (64) or a full shape (64x11x192)."""
    shapes = {}
    for spec in specs:
        name, sep, ranges = spec.rpartition(":")
        parts = ranges.split("/")
        if not sep or not name or len(parts) != 3:
            raise typer.BadParameter(f"expected NAME:MIN/OPT/MAX (e.g. lstm_1_input:1/1024/100000), got {spec!r}")
        if name in shapes:      # the last would win silently
            raise typer.BadParameter(f"--shapes gives input {name!r} twice: give each input once")
        dims = [_shape(p, spec) for p in parts]
        ranks = {len(d) if isinstance(d, list) else 0 for d in dims}    # 0: a batch size
        if len(ranks) > 1:
            raise typer.BadParameter(f"{spec!r}: MIN, OPT and MAX of input {name!r} must all be batch sizes or "
                                     "all full shapes of the same rank")
        batches = [d if isinstance(d, int) else d[0] for d in dims]
        if not 1 <= batches[0] <= batches[1] <= batches[2]:
            raise typer.BadParameter(f"{spec!r}: need 1 <= MIN <= OPT <= MAX")
        shapes[name] = dims
    return shapes


def _shape(text: str, spec: str) -> int | list[int]:
    if "x" not in text.lower():
        return whole_number(text, f"{spec!r}: a batch size")
    dims = [whole_number(d, f"{spec!r}: a dimension") for d in text.lower().split("x")]
    if math.prod(dims) > MAX_ELEMENTS:
        raise typer.BadParameter(f"{spec!r}: a shape of {text} has more than 2^40 elements")
    return dims


def parse_size(text: str, what: str, low: int, high: int) -> int:
    """A size like 512M or 4G, in bytes, from low to high (whole MiB and GiB, as the error says)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise typer.BadParameter(f"expected a {what} like 512M or 4G, got {text!r}")
    number, unit = match.groups()
    size = int(float(number) * 1024 ** "_KMGT".index(unit.upper() or "_"))
    if not low <= size <= high:
        raise typer.BadParameter(f"the {what} {text!r} is out of range ({low >> 20} MiB to {high >> 30} GiB)")
    return size


def size_text(size: int) -> str:
    """parse_size's inverse, in whole MiB (rounded up)."""
    return f"{-(-size // (1 << 20))}M"


def parse_memory(text: str | None) -> int | None:
    return None if text is None else parse_size(text, "memory limit", low=512 << 20, high=1 << 44)


def box_settings(trust_model: bool, memory: str | None, timeout: float) -> dict:
    """The BuildPlan fields of the options every command that runs a model shares."""
    return {"trust_model": trust_model, "memory": parse_memory(memory),
            "timeout": finite_number(timeout, "--timeout", 1.0, 7 * 86400.0)}


def finite_number(value: float, what: str, low: float, high: float) -> float:
    """A float option that must be a real number in [low, high] (nan and inf are not)."""
    if not (math.isfinite(value) and low <= value <= high):
        raise typer.BadParameter(f"{what} must be a number from {low:g} to {high:g}, got {value!r}")
    return value
