"""Bad input: a one-line error, a distinct exit code, no container left, nothing in --out."""
import json

import pytest
from conftest import STANDIN_ARGS

from trtkit.modelfile import HDF5_SIGNATURE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


def assert_clean_failure(result, exit_code, message, out):
    assert result.returncode == exit_code, (result.returncode, result.stderr[-1500:])
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr[-1500:]
    assert message in error_lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.trtkit-*")), "staging folder left behind"


def test_missing_model(trtkit, tmp_path):
    out = tmp_path / "out"
    result = trtkit("build", tmp_path / "nope.h5", *STANDIN_ARGS, "--out", out)
    assert_clean_failure(result, 10, "model not found", out)


@pytest.mark.parametrize("name, content, message", [
    ("empty.h5", b"", "is empty, not a model"),
    ("notes.h5", b"this is text, not HDF5\n" * 10, "is not a model trtkit reads"),
    ("model.keras", b"PK but not a zip", "is not a model trtkit reads"),
    ("model.bin", b"\x00\x01\x02" * 100, "is not a model trtkit reads"),
    ("model.onnx", b"PK not protobuf", "is not an ONNX model"),
])
def test_file_that_is_not_a_model(trtkit, tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    out = tmp_path / "out"
    assert_clean_failure(trtkit("build", tmp_path / name, *STANDIN_ARGS, "--out", out), 11, message, out)


def test_truncated_h5_is_found_in_the_container(trtkit, models, tmp_path):
    data = (models / "origin_lstm.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert_clean_failure(trtkit("build", tmp_path / "cut.h5", *STANDIN_ARGS, "--out", out), 11,
                         "cut.h5 is not a loadable h5 model", out)


def test_weights_only_h5(trtkit, models, tmp_path):
    out = tmp_path / "out"
    assert_clean_failure(trtkit("build", models / "weights_only.h5", *STANDIN_ARGS, "--out", out), 11,
                         "holds weights only", out)


def test_folder_without_saved_model_pb(trtkit, tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "variables").mkdir()
    out = tmp_path / "out"
    assert_clean_failure(trtkit("build", tmp_path / "export", *STANDIN_ARGS, "--out", out), 11,
                         "without saved_model.pb", out)


def test_unknown_tag_cannot_be_pulled(trtkit, models, tmp_path):
    """No registry is reachable here: the pull fails and says why in one line."""
    out = tmp_path / "out"
    result = trtkit("build", models / "origin_lstm.h5", "--image", "trtkit/standin", "--tag", "99.99-nope",
                    "--gpus", "none", "--out", out)
    assert_clean_failure(result, 14, "cannot pull trtkit/standin:99.99-nope", out)


def test_docker_daemon_not_reachable(trtkit, trtkit_env, models, tmp_path):
    out = tmp_path / "out"
    env = dict(trtkit_env, DOCKER_HOST="unix:///nonexistent/docker.sock")
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--out", out, env=env)
    assert_clean_failure(result, 12, "cannot reach the Docker daemon at unix:///nonexistent/docker.sock", out)
    assert trtkit("doctor", env=env).returncode == 12


def test_gpus_all_without_nvidia_runtime(trtkit, models, tmp_path):
    """The engine only fails at container start; trtkit turns that into advice and removes the container.
    --force: a finished ONNX build of an earlier test would be reused (it needs no GPU) and start nothing."""
    out = tmp_path / "out"
    result = trtkit("build", models / "origin_lstm.h5", "--image", "trtkit/standin", "--tag", "19.07-py3",
                    "--gpus", "all", "--target", "onnx", "--out", out, "--force")
    assert_clean_failure(result, 15, "cannot give containers a GPU", out)
    assert "NVIDIA Container Toolkit" in result.stderr


def test_engine_target_without_tensorrt(trtkit, models, tmp_path):
    out = tmp_path / "out"
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--target", "engine", "--out", out)
    assert_clean_failure(result, 19, "this image has no TensorRT", out)


def test_tftrt_target_refused_where_the_stack_lacks_it(trtkit, models, tmp_path):
    out = tmp_path / "out"
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--target", "tftrt", "--out", out)
    assert_clean_failure(result, 19, "this image's stack has no TF-TRT", out)
    assert "nvcr.io/nvidia/tensorflow" in result.stderr


@pytest.mark.parametrize("make_out", [
    lambda tmp: tmp / "a_file" / "out",    # a parent that is a file
    lambda tmp: tmp / "a_file",            # --out itself is a file
])
def test_output_folder_that_cannot_be_written(trtkit, models, tmp_path, make_out):
    (tmp_path / "a_file").write_text("in the way")
    out = make_out(tmp_path)
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--out", out)
    assert result.returncode == 16, result.stderr[-1500:]
    assert "cannot write the output folder" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "a_file").read_text() == "in the way"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_usage_errors_exit_2(trtkit, models):
    assert trtkit("build", models / "origin_lstm.h5").returncode == 2                      # no --tag
    result = trtkit("build", models / "origin_lstm.h5", "--tag", "x", "--shapes", "bad")
    assert result.returncode == 2 and "NAME:MIN/OPT/MAX" in result.stderr
    result = trtkit("build", models / "origin_lstm.h5", "--tag", "x", "--io-precision", "int8")
    assert result.returncode == 2 and "--io-precision" in result.stderr and "'int8'" in result.stderr


def test_doctor_reports_the_engine(trtkit):
    result = trtkit("doctor")
    assert result.returncode == 0, result.stderr
    assert "Docker daemon" in result.stdout and "NVIDIA runtime" in result.stdout


def test_doctors_gpu_check_runs_a_real_container_and_says_why_it_failed(standin):
    """On this engine (no NVIDIA runtime) the tiny --gpus container is refused at start: a failed check
    naming the fix, and the container is removed (no_leftovers). On the GPU machine the same check lists
    the GPU (docs/gpu-proof.md)."""
    from trtkit.commands.doctor import _gpu_in_a_container
    from trtkit.docker_runner import DockerRunner
    what, ok, detail, fix = _gpu_in_a_container(DockerRunner.connect())
    assert (what, ok) == ("GPU in a container", False)
    assert "cannot give containers a GPU" in detail and "NVIDIA Container Toolkit" in fix


def earlier_output(tmp_path, **fields):
    """An output folder whose trtkit.json the user edited: read before any container starts."""
    (tmp_path / "m.h5").write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    out = tmp_path / "earlier"
    out.mkdir()
    manifest = {"names": {"inputs": [], "outputs": []}, "model": {"path": str(tmp_path / "m.h5")},
                "image": {"reference": ":".join(STANDIN_ARGS[1:4:2])}, "target": {"chosen": "engine"},
                "engine": {"tensorrt": "8.6.0", "gpu": "NVIDIA H100", "compute_capability": "9.0"}}
    (out / "trtkit.json").write_text(json.dumps({key: value for key, value in {**manifest, **fields}.items()
                                                 if value != "absent"}))
    (out / "model.plan").write_bytes(b"plan")
    return out


@pytest.mark.parametrize("command, fields, message", [
    (["check"], {"image": "absent"}, "has no valid image.reference"),
    (["check"], {"target": "engine"}, "has no valid target.chosen"),
    (["bench", "--tag", "x"], {"target": None}, "has no valid target.chosen"),
    (["bench", "--tag", "x"], {"artifacts": 5}, "has no valid artifacts"),
])
def test_an_edited_manifest_is_an_invalid_model_naming_the_field(trtkit, tmp_path, command, fields, message):
    out = earlier_output(tmp_path, **fields)
    result = trtkit(command[0], out, *command[1:])
    assert result.returncode == 11, result.stderr[-1500:]
    assert f"{out / 'trtkit.json'} {message}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["check"], ["bench", "--tag", "x"], ["build", "--tag", "x"]])
def test_a_missing_output_folder_is_model_not_found_for_every_command(trtkit, tmp_path, command):
    result = trtkit(command[0], tmp_path / "gone", *command[1:])
    assert result.returncode == 10, result.stderr[-1500:]
    assert f"model not found: {tmp_path / 'gone'}" in result.stderr and "Traceback" not in result.stderr


def test_quiet_shows_a_failed_pull_as_its_error_line_alone(trtkit, tmp_path):
    """No progress display (not even its blank line) under --quiet; 14 offline, 13 where the registry answers."""
    (tmp_path / "m.h5").write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    result = trtkit("-q", "build", "m.h5", "--image", "nosuch/image", "--tag", "1", "--gpus", "none")
    assert result.returncode in (13, 14), result.stderr[-1500:]
    assert result.stderr.startswith("error: cannot pull nosuch/image:1") and len(result.stderr.splitlines()) == 1
