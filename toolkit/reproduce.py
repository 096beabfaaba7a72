"""reproduce.sh beside every output: the same build again, with no default left implicit.

It checks that the image is the very one this build used (by digest, else by id),
runs `trtkit build` with every option spelled out into a new folder, and records,
as comments, the container this amounts to: the image id, the hardening and the
limits, where the files go in and what comes out, and the plan the steps read.
"""
import dataclasses
import json
import shlex
from pathlib import Path

from trtkit_steps import contract

from . import __version__, build_options
from .console import plain
from .docker_runner import CONTAINER_USER, Limits
from .image_ref import pinned_by_digest
from .modelfile import safe_name, sha256_of
from .options import size_text
from .plan import BuildPlan
from .runtime.compat import image_arguments
from .toolchain import Toolchain

SCRIPT_NAME = "reproduce.sh"
TIMING_CACHE = "timing.cache"


def pinned_image(plan: BuildPlan, toolchain: Toolchain) -> str:
    """The image by digest where the registry gave one; else the reference (the script checks its id)."""
    return pinned_by_digest(plan.image, toolchain.base_digests)


def arguments(plan: BuildPlan, target: str | None, image: str) -> list[str]:
    """The arguments of `trtkit build` with every option explicit but the out folder (and the target when
    None: the build chooses it)."""
    args = [str(plan.model.path), *image_arguments(image)]
    args += ["--target", target] if target else []
    args += build_options.arguments(plan.settings)
    args += ["--gpus", plan.options()["gpus"], "--timeout", f"{plan.timeout:g}"] + ["--trust-model"] * plan.trust_model
    args += ["--memory", size_text(plan.memory)] if plan.memory else []
    if plan.bench:
        args += ["--bench", "--batch", ",".join(map(str, plan.bench["batches"])),
                 "--iterations", str(plan.bench["iterations"]), "--warmup", str(plan.bench["warmup"])]
    return args


def _build_command(folder: Path, plan: BuildPlan, target: str, image: str, default_out: str) -> list[str]:
    """The `trtkit build` line. An engine build replays its own timing cache (which holds any it was given),
    pinned by the sha256 it had when the build ended."""
    engine = target == "engine"
    replayed = dataclasses.replace(plan, settings={**plan.settings, "timing_cache": None}) if engine else plan
    args = arguments(replayed, target, image)
    line = " ".join(shlex.quote(a) for a in ["trtkit", "build", *args])
    out = f' --out "${{1:-{default_out}}}"'
    if not engine:
        return [line + out]
    return [
        f'timing_cache="$(cd "$(dirname "$0")" && pwd)/{TIMING_CACHE}"',
        # printf, not echo: /bin/sh's echo (dash's) reads backslashes in the path as escapes
        f"printf '%s  %s\\n' {sha256_of(folder / TIMING_CACHE)} \"$timing_cache\" | sha256sum -c --status || "
        "{ printf 'reproduce.sh: %s is not the timing cache this build ended with\\n' \"$timing_cache\" >&2; exit 1; }",
        line + ' --timing-cache "$timing_cache"' + out,
    ]


def write(folder: Path, plan: BuildPlan, target: str, toolchain: Toolchain, limits: Limits) -> None:
    image = pinned_image(plan, toolchain)
    default_out = f"{safe_name(plan.model.name)}-reproduced"
    lines = [
        "#!/bin/sh",
        f"# Re-create this build, written by trtkit {__version__}. Usage: sh reproduce.sh [OUT]",
        "# (OUT must be a new folder, or an earlier output of this script; not this folder).",
        "set -eu",
        f"image={shlex.quote(image)}",
        f"expected={shlex.quote(toolchain.base_id)}",
        'actual=$(docker image inspect --format "{{.Id}}" "$image")',
        '[ "$actual" = "$expected" ] || { echo "reproduce.sh: $image is $actual, not the image this build used '
        '($expected)" >&2; exit 1; }',
        f'trtkit --version | grep -qx {shlex.quote("trtkit " + __version__)} || '
        f'echo "reproduce.sh: this build used trtkit {__version__}; results may differ" >&2',
        "# A clean trtkit cache, so the build is redone rather than taken from the cache of finished builds.",
        'TRTKIT_CACHE=$(mktemp -d); export TRTKIT_CACHE; trap \'rm -rf "$TRTKIT_CACHE"\' EXIT',
    ] + _build_command(folder, plan, target, image, default_out) + [
        "",
        "# What it amounts to in Docker (trtkit mounts nothing; files go in and out through the API):",
        f"#   docker create --user {CONTAINER_USER} --cap-drop ALL --security-opt no-new-privileges --read-only \\",
        f"#     --tmpfs /tmp:size={limits.tmp_bytes},mode=1777 --network none --init --pids-limit {limits.pids} \\",
        f"#     --memory {limits.memory_bytes} --memory-swap {limits.memory_bytes} "
        f"--log-opt max-size={limits.log_bytes} \\",
        f"#     --mount type=volume,dst={contract.ROOT} {toolchain.image_id} \\",
        f"#     python3 {contract.SCRIPTS}/pipeline.py {contract.WORK}/{contract.PLAN}",
        f"#   (toolchain {toolchain.tag}, derived from {plan.image} {toolchain.base_id})",
        f"#   docker cp - CONTAINER:{contract.ROOT}   < a tar of scripts/ (trtkit's), "
        f"model/{plain(plan.model.path.name)}, work/{contract.PLAN} (below)",   # one line: a comment still
        "#   docker start -a CONTAINER",
        f"#   docker cp CONTAINER:{contract.WORK}/{contract.ARTIFACTS} .   "
        f"(trtkit keeps only {', '.join(contract.allowed_artifacts(target, bool(plan.bench)))}, as regular files)",
        "#   docker rm -v CONTAINER",
        f"# {contract.PLAN}:",
    ] + [f"#   {line}" for line in json.dumps(plan.container_plan(target), indent=2, sort_keys=True).splitlines()]
    path = folder / SCRIPT_NAME
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
