"""The table of known nvcr.io/nvidia/tensorrt tags, the one source of the README's table.

The toolchain probe (scripts/trtkit_steps/probe.py) decides at build time; this table only says
what to expect, and gives the Python whose wheels `trtkit wheelhouse` fetches.

A row's `source` is the NVIDIA release-notes page every figure of the row was read in. NVIDIA's
own TensorRT container notes for these tags could not be read, so the sources are the notes of a
sibling NVIDIA container of the same monthly release (TensorFlow, PaddlePaddle); their `note`
names which. Those rows assume the TensorRT image of a release has that release's CUDA, Ubuntu,
Python and TensorRT. A row with no source is marked in the table, and its `note` says what its
figures rest on. Inferred, not read in NVIDIA's notes:
- 22.01: every figure (a blog's quote of NVIDIA's 22.01 notes; Triton 22.01 notes give CUDA 11.6.0).
- 25.01: Ubuntu 24.04; TensorRT, CUDA and Python are the 25.01 Triton TensorRT-LLM container's.
- 26.02: TensorRT 10.15.1 is NVIDIA's Model-Optimizer PR #1112's word, CUDA the 26.02 Triton notes';
  Python 3.12 and Ubuntu 24.04 are carried over from 25.01.
- 26.06: TensorRT 11.0.0 is what public projects report running in the image (TensorRT 11.0 was
  released 2026-06-02); CUDA is the 26.06 Triton notes'; Python 3.12 and Ubuntu 24.04 as for 26.02.
  The first 26.xx tag with TensorRT 11 is not known: 26.03-26.05 are left out for that reason.

Regenerate the README's table with `python -m trtkit.tags README.md` (or `make readme-tags`).
"""
import re
import sys
from dataclasses import dataclass
from pathlib import Path

BEGIN, END = "<!-- tags:begin -->", "<!-- tags:end -->"
UNSOURCED = "?"


@dataclass(frozen=True)
class TagInfo:
    tag: str
    tensorrt: str
    cuda: str
    python: str
    ubuntu: str
    source: str | None  # URL of the release notes every figure was read in
    note: str  # which notes `source` is; without a source, what the figures rest on


_NOTES = "https://docs.nvidia.com/deeplearning/frameworks"

KNOWN_TAGS = [
    TagInfo("19.07-py3", "5.1.5", "10.1", "3.6", "18.04", f"{_NOTES}/tensorflow-release-notes/rel_19.07.html",
            "TensorFlow 19.07 notes"),
    TagInfo("20.03-py3", "7.0.0", "10.2", "3.6", "18.04", f"{_NOTES}/tensorflow-release-notes/rel_20-03.html",
            "TensorFlow 20.03 notes"),
    TagInfo("22.01-py3", "8.2.2", "11.6", "3.8", "20.04", None,
            "a blog's quote of the TensorRT 22.01 notes; Triton 22.01 notes give CUDA 11.6.0"),
    TagInfo("24.05-py3", "10.0.1", "12.4", "3.10", "22.04", f"{_NOTES}/paddle-paddle-release-notes/rel-24-05.html",
            "PaddlePaddle 24.05 notes"),
    TagInfo("25.01-py3", "10.8.0", "12.8", "3.12", "24.04", None,
            "Triton 25.01 TensorRT-LLM container's TensorRT, CUDA, Python; Ubuntu assumed"),
    TagInfo("26.02-py3", "10.15.1", "13.1", "3.12", "24.04", None,
            "TensorRT from NVIDIA Model-Optimizer PR #1112, CUDA from Triton 26.02 notes; Python, Ubuntu assumed"),
    TagInfo("26.06-py3", "11.0.0", "13.3", "3.12", "24.04", None,
            "TensorRT as public projects report it, CUDA from Triton 26.06 notes; Python, Ubuntu assumed"),
]


def known_tag(tag: str) -> TagInfo | None:
    return next((t for t in KNOWN_TAGS if t.tag == tag), None)


def trtexec_has_precision_flags(tensorrt_version: str) -> bool:
    """TensorRT 11's trtexec dropped --fp16/--int8/--best: networks are strongly typed."""
    return int(tensorrt_version.split(".")[0]) < 11


def render_markdown() -> str:
    """The README's table with its legend, as it sits between the markers."""
    header = ["| tag | TensorRT | CUDA | Python | Ubuntu | trtexec precision flags | source |",
              "|---|---|---|---|---|---|---|"]
    legend = (f"Rows marked `{UNSOURCED}` have no source: not all their figures were read in NVIDIA's release notes, "
              "and the source column says what they rest on. Where a source is another NVIDIA container's notes "
              "(TensorFlow, PaddlePaddle), the TensorRT image of that monthly release is taken to share its stack.")
    return "\n".join([legend, "", *header, *map(_row, KNOWN_TAGS)])


def _row(info: TagInfo) -> str:
    tag = info.tag if info.source else f"{info.tag} {UNSOURCED}"
    flags = "`--fp16`, `--int8`" if trtexec_has_precision_flags(info.tensorrt) else "none (strongly typed)"
    source = f"[{info.note}]({info.source})" if info.source else info.note
    return f"| {' | '.join([tag, info.tensorrt, info.cuda, info.python, info.ubuntu, flags, source])} |"


def with_table(readme: str) -> str:
    """`readme` with the text between the tag-table markers replaced by the rendered table."""
    pattern = re.compile(f"{re.escape(BEGIN)}\n.*?{re.escape(END)}", re.DOTALL)
    if len(pattern.findall(readme)) != 1:
        raise ValueError(f"expected one {BEGIN} ... {END} block")
    return pattern.sub(lambda _: f"{BEGIN}\n{render_markdown()}\n{END}", readme)


def main(argv: list[str]) -> None:
    """No argument: print the table. A README path: rewrite its table in place."""
    if not argv:
        print(render_markdown())
        return
    readme = Path(argv[0])
    readme.write_text(with_table(readme.read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
