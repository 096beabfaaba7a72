"""Every trtkit command in the README's shell blocks runs here as written, or is listed with why it cannot.

NVIDIA's images cannot be pulled here, so for this test the stand-in image also answers to the README's
nvcr.io/nvidia/tensorrt:24.05-py3 (a second name for the same image, removed after). What is tested is the
commands themselves: their arguments, exit codes and outputs, in one folder holding the origin model as
model.h5. A new command in the README fails test_every_command_is_run_or_says_why until it is in one list.
"""
import json
import re
from pathlib import Path

import docker
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
README_IMAGE = "nvcr.io/nvidia/tensorrt:24.05-py3"

# In README order; each runs after the ones before it, in the same folder.
RUN_HERE = [
    "trtkit doctor",
    "trtkit doctor --clean",
    "trtkit inspect model.h5 --tag 24.05-py3",
    "trtkit build model.h5 --tag 24.05-py3",
    "trtkit lock --tag 24.05-py3",
    "trtkit build model.h5 --tag 24.05-py3 --locked",
    "trtkit build model.h5 --tag 24.05-py3 --target onnx --bench",
]
NEEDS_A_GPU = "needs a GPU and NVIDIA's TensorRT image: benchmarks/gpu_proof/run.sh runs these on one"
NOT_HERE = {
    "trtkit --verbose build ...": "a placeholder for any build",
    "trtkit build model.h5 --tag 24.05-py3 --target engine --precision fp16 --shapes lstm_1_input:1/1024/100000":
        NEEDS_A_GPU,
    "trtkit build model.h5 --image nvcr.io/nvidia/tensorflow --tag 24.05-tf2-py3 --target tftrt":
        "needs NVIDIA's TensorFlow image with TF-TRT (issue 3: not exercised)",
    "trtkit bench trtkit-out/model --tag 24.05-py3 --batch 1,64,1024,100000":
        "Keras at batch 100000 takes minutes on a CPU; the --bench build below benches smaller batches",
    "trtkit check trtkit-out/model --tag 24.05-py3 --gpus all": NEEDS_A_GPU,
    "trtkit build --gpus 0,1,2,3": "a project on four GPUs; test_project.py builds a project's matrix",
    "trtkit build trtkit-out/model --tag 24.05-py3 --gpus all": NEEDS_A_GPU,
    "trtkit bench trtkit-out/model --tag 24.05-py3 --gpus all": NEEDS_A_GPU,
    "trtkit build model.h5 --tag 24.05-py3 --target engine --precision fp16 --exact-batches 1,64 --io-precision fp16":
        NEEDS_A_GPU,
    "trtkit images save nvcr.io/nvidia/tensorrt:24.05-py3 -o trt-24.05.tar.gz":
        "test_images.py saves, loads and derives the stand-in under its own name",
    "trtkit wheelhouse 24.05-py3 -o wheels/": "downloads the toolchain's wheels from PyPI (gigabytes)",
    "trtkit images load trt-24.05.tar.gz": "needs the save above; test_images.py loads one",
    "trtkit images derive nvcr.io/nvidia/tensorrt:24.05-py3 --wheelhouse wheels/":
        "needs the wheelhouse above; test_images.py derives from one",
}


def readme_commands() -> list[str]:
    """The trtkit lines of the README's bash blocks, without their comments."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.S | re.M)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("trtkit ")]


def test_every_command_is_run_or_says_why():
    commands = readme_commands()
    assert [c for c in commands if c not in RUN_HERE and c not in NOT_HERE] == []
    assert [c for c in RUN_HERE + list(NOT_HERE) if c not in commands] == [], "listed here, gone from the README"


@pytest.fixture
def readme_image(standin, docker_client):
    image = docker_client.images.get(standin)
    image.tag(README_IMAGE)
    yield
    try:
        docker_client.images.remove(README_IMAGE)   # the name only: the stand-in keeps its own
    except docker.errors.ImageNotFound:
        pass


@pytest.mark.docker
def test_the_commands_run_as_written(trtkit, models, readme_image, tmp_path, no_leftovers):
    (tmp_path / "model.h5").write_bytes((models / "origin_lstm.h5").read_bytes())
    for command in RUN_HERE:
        result = trtkit(*command.split()[1:])
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    # What the README says of them: the build made an ONNX export where no GPU is visible, the lock pins the
    # image the build used, and the --bench build timed Keras and the export.
    manifest = json.loads((tmp_path / "trtkit-out" / "model" / "trtkit.json").read_text())
    assert manifest["target"]["chosen"] == "onnx" and (tmp_path / "trtkit-out" / "model" / "model.onnx").is_file()
    assert manifest["image"]["id"] in (tmp_path / "trtkit.lock").read_text()
    assert {row["framework"] for row in manifest["bench"]["rows"]} >= {"keras-predict", "onnxruntime"}
