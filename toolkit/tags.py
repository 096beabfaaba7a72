"""Known NVIDIA TensorRT container tags: the one place trtkit keeps them.

The toolchain probe (scripts/trtkit_steps/probe.py) is what decides at build
time; this table documents what to expect, names the tags that have TF-TRT,
and gives the trtexec precision flags per TensorRT major version. Sources:
NVIDIA container release notes (see docs/tags.md); `confirmed=False` marks a
row inferred rather than read.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class TagInfo:
    tag: str
    tensorrt: str
    cuda: str
    python: str
    ubuntu: str
    tftrt: str | None     # how TF-TRT is available in this stack, None when it is not
    confirmed: bool = True

    @property
    def trtexec_precision_flags(self) -> bool:
        return trtexec_has_precision_flags(self.tensorrt)


KNOWN_TAGS = [
    TagInfo("19.07-py3", "5.1.5", "10.1", "3.6", "18.04", "TF 1.14 from python_setup.sh: TrtGraphConverter", confirmed=False),
    TagInfo("20.03-py3", "7.0.0", "10.2", "3.6", "18.04", "TF 1.15 from python_setup.sh: TrtGraphConverter", confirmed=False),
    TagInfo("22.01-py3", "8.2.2", "11.6", "3.8", "20.04", None),
    TagInfo("24.05-py3", "10.0.1", "12.4", "3.10", "22.04", None),
    TagInfo("25.01-py3", "10.8.0", "12.8", "3.12", "24.04", None, confirmed=False),
]


def trtexec_has_precision_flags(tensorrt_version: str) -> bool:
    """TensorRT 11's trtexec dropped --fp16/--int8/--best: networks are strongly typed."""
    return int(tensorrt_version.split(".")[0]) < 11


def known_tag(tag: str) -> TagInfo | None:
    return next((t for t in KNOWN_TAGS if t.tag == tag), None)


def tags_with_tftrt() -> list[str]:
    return [t.tag for t in KNOWN_TAGS if t.tftrt]
