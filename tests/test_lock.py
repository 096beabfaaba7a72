"""trtkit lock and build --locked, on the real engine: what is recorded, and every difference stops a build."""
import json

import pytest
from conftest import STANDIN, STANDIN_ARGS

from trtkit import __version__
from trtkit.errors import LockMismatch
from trtkit.lock import FORMAT, differences, locked_entry, read
from trtkit.modelfile import HDF5_SIGNATURE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]
REFERENCE = ":".join(STANDIN)


def test_differences_name_each_change():
    locked = {"id": "sha256:a", "toolchain": {"tag": "t1"}, "packages": {"numpy": "1.26.4", "onnx": "1.17.0"}}
    current = {"id": "sha256:b", "toolchain": {"tag": "t1"}, "packages": {"numpy": "2.0.0", "h5py": "3.12.1"}}
    assert differences(locked, current) == ["image sha256:a locked, sha256:b here",
                                            "h5py absent locked, 3.12.1 here", "numpy 1.26.4 locked, 2.0.0 here",
                                            "onnx 1.17.0 locked, absent here"]
    assert differences(locked, dict(locked)) == []
    # The engine of a two-stage build runs in the image itself: only the image is compared.
    assert differences(locked, dict(current, id="sha256:a"), image_only=True) == []
    assert differences(locked, current, image_only=True) == ["image sha256:a locked, sha256:b here"]


GOOD_ENTRY = {"id": "sha256:a", "digests": [], "toolchain": {"tag": "trtkit/toolchain:a", "id": "sha256:t"},
              "packages": {"numpy": "1.26.4"}}


def write_lock(path, entry):
    path.write_text(json.dumps({"format": FORMAT, "trtkit": __version__, "images": {REFERENCE: entry}}))
    return path


@pytest.mark.parametrize("entry", [{}, 5, None, [], {"id": "sha256:a"}, dict(GOOD_ENTRY, digests="sha256:b"),
                                   dict(GOOD_ENTRY, toolchain=None), dict(GOOD_ENTRY, packages=[])])
def test_a_malformed_entry_is_refused_when_the_lock_is_read(tmp_path, entry):
    with pytest.raises(LockMismatch, match=f"the entry for {REFERENCE} is not an entry") as raised:
        read(write_lock(tmp_path / "trtkit.lock", entry))
    assert raised.value.exit_code == 24
    assert read(write_lock(tmp_path / "trtkit.lock", GOOD_ENTRY))["images"][REFERENCE] == GOOD_ENTRY


@pytest.mark.parametrize("reference, command", [
    ("trtkit/standin@sha256:" + "a" * 64, "trtkit lock --image trtkit/standin@sha256:" + "a" * 64),
    ("localhost:5000/team/trt:24.05-py3", "trtkit lock --image localhost:5000/team/trt --tag 24.05-py3"),
])
def test_a_missing_entry_names_the_lock_command_that_records_it(tmp_path, reference, command):
    lock = {"format": FORMAT, "trtkit": __version__, "images": {}}
    with pytest.raises(LockMismatch, match=f"has no entry for {reference}") as raised:
        locked_entry(lock, tmp_path / "trtkit.lock", reference)
    assert raised.value.hint == command


def test_build_locked_with_an_empty_entry_stops_before_any_container(trtkit, tmp_path):
    (tmp_path / "m.h5").write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    write_lock(tmp_path / "trtkit.lock", {})
    result = trtkit("build", "m.h5", *STANDIN_ARGS, "--locked", "--out", tmp_path / "out")
    assert result.returncode == 24, result.stderr[-1500:]
    assert "is not an entry trtkit lock writes" in result.stderr and "Traceback" not in result.stderr


def test_lock_then_build_locked_and_every_difference_stops_it(trtkit, models, tmp_path, docker_client):
    result = trtkit("lock", "--image", STANDIN[0], "--tag", STANDIN[1])
    assert result.returncode == 0, result.stderr[-1500:]
    lock_file = tmp_path / "trtkit.lock"
    lock = json.loads(lock_file.read_text())
    entry = lock["images"][REFERENCE]
    assert entry["id"] == docker_client.images.get(REFERENCE).id and entry["digests"] == []   # a local image
    assert entry["toolchain"]["tag"].startswith("trtkit/toolchain:")
    assert entry["packages"]["tensorflow-cpu"] == "2.21.0" and entry["packages"]["tf2onnx"] == "1.17.0"

    build = ["build", models / "origin_lstm.h5", *STANDIN_ARGS, "--target", "onnx", "--locked"]
    result = trtkit(*build, "--out", tmp_path / "ok")
    assert result.returncode == 0, result.stderr[-1500:]
    # Locked on a host that pulled it, built where it came by `docker load` (no registry digest here): the tag
    # names the locked image (the same id), so it runs, rather than a pull of the digest from an unreachable
    # registry.
    pulled = json.loads(json.dumps(lock))
    pulled["images"][REFERENCE]["digests"] = [f"{STANDIN[0]}@sha256:" + "1" * 64]
    lock_file.write_text(json.dumps(pulled))
    result = trtkit(*build, "--out", tmp_path / "loaded")
    assert result.returncode == 0, result.stderr[-1500:]

    for change, message in [
        (lambda lk: lk["images"][REFERENCE]["packages"].update(tf2onnx="1.9.0"), "tf2onnx 1.9.0 locked, 1.17.0 here"),
        (lambda lk: lk["images"][REFERENCE].update(id="sha256:" + "0" * 64), "image sha256:000"),
        (lambda lk: lk.update(trtkit="0.0.1"), "was made with trtkit 0.0.1"),
        (lambda lk: lk["images"].pop(REFERENCE), f"has no entry for {REFERENCE}"),
    ]:
        changed = json.loads(json.dumps(lock))
        change(changed)
        lock_file.write_text(json.dumps(changed))
        out = tmp_path / "refused"
        result = trtkit(*build, "--out", out)
        assert result.returncode == 24, (message, result.stderr[-1500:])
        assert message in result.stderr and "Traceback" not in result.stderr
        assert not out.exists()
    lock_file.unlink()
    result = trtkit(*build, "--out", tmp_path / "refused")
    assert result.returncode == 24 and "--locked needs" in result.stderr
