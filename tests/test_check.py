"""trtkit check: the verdict logic, and the path a CPU host can take (the GPU path: docs/gpu-proof.md)."""
import json
import shutil
import subprocess
import sys

import pytest
from conftest import STANDIN_ARGS

from trtkit import session
from trtkit.engine_check import EngineRecord, rebuild_hint, verdict, version_mismatch
from trtkit.errors import TargetUnsupported
from trtkit.runtime import compat

BUILT = EngineRecord("8.6.0", "NVIDIA H100 80GB HBM3", "9.0")


def test_an_engine_loads_only_with_its_tensorrt():
    assert version_mismatch(BUILT, "8.6.0") is None
    assert version_mismatch(BUILT, "10.0.1") == "it was built with TensorRT 8.6.0 and the image has TensorRT 10.0.1"
    assert version_mismatch(BUILT, None) == "the image has no TensorRT"


def test_the_verdict_names_the_gpu_it_was_tuned_for():
    assert verdict(BUILT, BUILT, None).startswith("loads here: TensorRT 8.6.0 on NVIDIA H100")
    other = EngineRecord("8.6.0", "NVIDIA H200", "9.0")
    assert "tuned on NVIDIA H100 80GB HBM3 (sm 9.0), not NVIDIA H200" in verdict(BUILT, other, None)
    with pytest.raises(TargetUnsupported, match="cannot load here: bad magic .* here TensorRT 8.6.0 on NVIDIA H200"):
        verdict(BUILT, other, "bad magic")


@pytest.mark.parametrize("built, here, loads", [
    ("8.6.1", "8.6.1.6", True),      # trtexec's version against the Python package's: one release
    ("8.6.1.6", "8.6.1", True),
    ("10.0.0b6", "10.0.0", True),
    ("8.10.0", "8.9.1", False),
    ("8.6.1", "10.0.1", False),
])
def test_check_and_the_runtime_agree_on_which_tensorrt_loads_an_engine(built, here, loads):
    """One rule: trtkit check compared the versions as strings, the runtime as releases."""
    runtime_loads = True
    try:
        compat.compatibility(compat.Built(built, BUILT.gpu, BUILT.compute_capability, "m.h5", "IMAGE:TAG"),
                             compat.Host(here, BUILT.gpu, BUILT.compute_capability))
    except compat.IncompatibleEngine:
        runtime_loads = False
    record = EngineRecord(built, BUILT.gpu, BUILT.compute_capability)
    assert runtime_loads == loads
    assert (version_mismatch(record, here) is None) == loads
    if loads:
        assert verdict(record, EngineRecord(here, BUILT.gpu, BUILT.compute_capability), None).startswith("loads here")


@pytest.mark.parametrize("manifest", [{"model": {"path": "/m/a.h5"}, "earlier_build": {"path": "/out/first"}},
                                      {"model": {"path": "/m/a.h5"}, "earlier_build": "not a record"}])
def test_check_and_the_runtime_give_one_rebuild_command(tmp_path, manifest):
    image = "localhost:5000/trt:8.6-py3"
    (tmp_path / "trtkit.json").write_text(json.dumps({
        **manifest, "artifacts": [{"name": "model.plan", "kind": "engine"}], "image": {"reference": image},
        "engine": {"tensorrt": "8.6.1", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}}))
    built = compat.read_manifest(str(tmp_path / "trtkit.json"), "model.plan").built
    with pytest.raises(compat.IncompatibleEngine) as refused:
        compat.compatibility(built, compat.Host("8.6.1", "NVIDIA A100", "8.0"))
    command = rebuild_hint(tmp_path, manifest, image).removeprefix("rebuild here: ")
    assert str(refused.value).endswith(f"Rebuild it on this GPU: {command}")
    assert command.startswith(f"trtkit build {built.source} --target engine --image localhost:5000/trt --tag 8.6-py3")


def test_trtkit_check_needs_no_numpy():
    """The host has no numpy (trtkit does not depend on it): the rule it shares with the runtime needs none."""
    code = "import sys; sys.modules['numpy'] = None\nimport trtkit.engine_check, trtkit.cli"
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr


@pytest.fixture(scope="module")
def engine_output(exported, tmp_path_factory):
    """An output folder recording an engine (built on a GPU elsewhere; its plan bytes do not matter here)."""
    out = tmp_path_factory.mktemp("check") / "origin"
    shutil.copytree(exported, out)
    manifest = json.loads((out / "trtkit.json").read_text())
    manifest["target"]["chosen"] = "engine"
    manifest["engine"] = {"tensorrt": "8.6.0", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    (out / "trtkit.json").write_text(json.dumps(manifest))
    (out / "model.plan").write_bytes(b"plan")
    return out


@pytest.mark.docker
@pytest.mark.usefixtures("no_leftovers")
def test_an_image_with_another_tensorrt_is_answered_without_a_gpu(trtkit, engine_output):
    result = trtkit("check", engine_output, *STANDIN_ARGS)
    assert result.returncode == 19, result.stderr[-1500:]
    assert "the engine cannot load in trtkit/standin:19.07-py3: the image has no TensorRT" in result.stderr
    assert "rebuild here: trtkit build " in result.stderr
    assert "--target engine --image trtkit/standin --tag 19.07-py3 --gpus all" in result.stderr


@pytest.mark.docker
def test_only_engine_outputs_are_checked(trtkit, engine_output, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(engine_output, copy)
    (copy / "model.plan").unlink()
    (copy / "model.plan").symlink_to("/etc/passwd")
    result = trtkit("check", copy, *STANDIN_ARGS)
    assert result.returncode == 11 and "is not a regular file" in result.stderr


def test_check_shows_container_strings_as_text(monkeypatch, tmp_path, capsys):
    from trtkit.commands.check import check
    from trtkit.engine_check import EngineRecord, verdict
    evil = "[link=https://e.x]H100[/link]\x1b]0;owned\x07\x1b[2J"
    built, here = EngineRecord("8.6.1", "H100", "9.0"), EngineRecord("8.6.1", evil, "[bold]9.0")
    (tmp_path / "trtkit.json").write_text(json.dumps({"names": {}, "model": {"path": "/m.h5"},
                                                      "image": {"reference": "i:t"}}))
    monkeypatch.setattr(session, "check", lambda plan, out, manifest: session.CheckOutcome(
        built, here, verdict(built, here, None)))
    check(tmp_path, gpus="none", timeout=30)
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown and "owned" not in shown
    assert shown.count("[link=https://e.x]H100[/link]") == 2 and "[bold]9.0" in shown    # the cell and the verdict
