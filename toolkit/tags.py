"""Known NVIDIA TensorRT container tags: the one place trtkit keeps them.

The toolchain probe (scripts/trtkit_steps/probe.py) is what decides at build
time; this table documents what to expect and gives the trtexec precision
flags per TensorRT major version. Sources:
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
    confirmed: bool = True


KNOWN_TAGS = [
    TagInfo("19.07-py3", "5.1.5", "10.1", "3.6", "18.04", confirmed=False),
    TagInfo("20.03-py3", "7.0.0", "10.2", "3.6", "18.04"),
    TagInfo("22.01-py3", "8.2.2", "11.6", "3.8", "20.04"),
    TagInfo("24.05-py3", "10.0.1", "12.4", "3.10", "22.04"),
    TagInfo("25.01-py3", "10.8.0", "12.8", "3.12", "24.04", confirmed=False),
]

# TF-TRT needs a TensorFlow 2.x (<= 2.17) built with TensorRT. The TensorRT images have none:
# python_setup.sh of 19.xx-20.xx tags brings TF 1.x, which the toolchain replaces with TF 2.6
# (trtkit's steps need TF 2). NVIDIA's TensorFlow images carry TF-TRT.
TFTRT_IMAGES = "nvcr.io/nvidia/tensorflow with a -tf2-py3 tag (TensorFlow <= 2.17)"


def trtexec_has_precision_flags(tensorrt_version: str) -> bool:
    """TensorRT 11's trtexec dropped --fp16/--int8/--best: networks are strongly typed."""
    return int(tensorrt_version.split(".")[0]) < 11


def known_tag(tag: str) -> TagInfo | None:
    return next((t for t in KNOWN_TAGS if t.tag == tag), None)

