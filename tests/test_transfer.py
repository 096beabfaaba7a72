"""toolkit/transfer.py: what goes into a box, and what of its output comes back."""
import tarfile
from pathlib import Path

import pytest
import requests
from box_doubles import FakeArchiveResponse, fill, tar_stream

from trtkit.docker_runner import Archive
from trtkit.errors import InvalidModel, OutputNotWritable, StepFailed
from trtkit.transfer import Inputs, artifact_rule, plain_files, receive
from trtkit_steps import contract

ALLOWED = contract.allowed_artifacts("tftrt", bench=False)


def test_artifacts_are_taken_by_name_as_regular_files(tmp_path):
    taken = receive(tar_stream(("model.onnx", "file", b"onnx"), ("evil.sh", "file", b"rm -rf"),
                               ("../escape", "file", b"x"), ("/abs", "file", b"x"),
                               ("model.tftrt", "dir", None), ("model.tftrt/variables", "dir", None),
                               ("model.tftrt/variables/v.data", "file", b"v")),
                    tmp_path, artifact_rule(ALLOWED), 1 << 20, "artifacts")
    assert taken == ["model.onnx", "model.tftrt", "model.tftrt/variables", "model.tftrt/variables/v.data"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "model.onnx", "model.tftrt", "model.tftrt/variables", "model.tftrt/variables/v.data"]
    assert not (tmp_path.parent / "escape").exists()


@pytest.mark.parametrize("member, says", [
    (("model.onnx", "symlink", "/etc/passwd"), "model.onnx as a link to '/etc/passwd'"),
    (("model.onnx", "hardlink", "artifacts/other"), "model.onnx as a link to 'artifacts/other'"),
    (("model.pb", "device", None), "model.pb as a special file"),
    (("model.pb", "fifo", None), "model.pb as a special file"),
    (("model.onnx", "dir", None), "model.onnx as a folder, not a regular file"),
    (("model.tftrt/saved_model.pb", "symlink", "/root/.ssh/id_rsa"), "model.tftrt/saved_model.pb as a link"),
])
def test_artifacts_in_any_other_form_are_refused(tmp_path, member, says):
    with pytest.raises(StepFailed, match="refused") as caught:
        receive(tar_stream(member), tmp_path, artifact_rule(ALLOWED), 1 << 20, "artifacts")
    assert says in caught.value.message
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_a_name_twice_and_too_many_bytes_are_refused(tmp_path):
    with pytest.raises(StepFailed, match="model.onnx twice"):
        receive(tar_stream(("model.onnx", "file", b"a"), ("model.onnx", "file", b"b")), tmp_path,
                artifact_rule(ALLOWED), 1 << 20, "artifacts")
    with pytest.raises(StepFailed, match="more than 0 MiB of artifacts"):
        receive(tar_stream(("model.pb", "file", b"x" * 5000)), tmp_path / "x", artifact_rule(ALLOWED), 4096,
                "artifacts")


def test_evidence_and_cache_keep_only_named_small_regular_files(tmp_path):
    rule = plain_files(lambda name: name in contract.EVIDENCE_FILES, 10)
    taken = receive(tar_stream(("inputs.npz", "file", b"ok"), ("actual.npz", "symlink", "/"),
                               ("expected.npz", "file", b"x" * 11), ("evil.sh", "file", b"x"),
                               ("sub", "dir", None), ("sub/inputs.npz", "file", b"x"), top="evidence"),
                    tmp_path, rule, 1 << 20, "evidence")
    assert taken == ["inputs.npz"] and [p.name for p in tmp_path.iterdir()] == ["inputs.npz"]
    assert contract.CACHE_FILE.match("timing-8.6.0-NVIDIA_H100_80GB_HBM3-sm90.cache")
    assert contract.CACHE_FILE.match("calibration-" + "ab" * 16 + ".cache")
    assert not any(contract.CACHE_FILE.match(n) for n in ("../x.cache", "calibration-xyz.cache", "timing-a/b.cache"))


def test_a_stream_that_is_not_a_tar_is_one_error(tmp_path):
    with pytest.raises(StepFailed, match="could not read the artifacts"):
        receive(iter([b"not a tar at all" * 100]), tmp_path, artifact_rule(ALLOWED), 1 << 20, "artifacts")


def sent(tmp_path, source: Path, container_path: str) -> dict[str, tuple[bytes, bytes | None]]:
    """What Inputs.path puts in the tar for source: member name -> (type, bytes of a file)."""
    inputs = Inputs(tmp_path)
    inputs.path(container_path, source)
    with inputs.finish() as archive, tarfile.open(fileobj=archive) as tar:
        return {m.name: (m.type, tar.extractfile(m).read() if m.isreg() else None) for m in tar}


def test_a_symlinked_model_is_sent_as_its_bytes_under_its_own_name(tmp_path):
    (tmp_path / "real.h5").write_bytes(b"weights")
    (tmp_path / "link.h5").symlink_to(tmp_path / "real.h5")
    members = sent(tmp_path, tmp_path / "link.h5", f"{contract.MODEL_DIR}/link.h5")
    assert list(members.values()) == [(tarfile.REGTYPE, b"weights")]
    assert list(members) == [f"{contract.MODEL_DIR}/link.h5".removeprefix(contract.ROOT + "/")]


def test_a_savedmodel_folder_follows_links_only_to_files_inside_it(tmp_path):
    real = tmp_path / "store" / "saved"
    (real / "variables").mkdir(parents=True)
    (real / "blob").write_bytes(b"pb")
    (real / "saved_model.pb").symlink_to("blob")
    (real / "variables" / "v.data").write_bytes(b"v")
    (real / "__pycache__").mkdir()
    (tmp_path / "model").symlink_to(real)               # the folder named is followed wherever it is
    members = sent(tmp_path, tmp_path / "model", f"{contract.MODEL_DIR}/model")
    top = f"{contract.MODEL_DIR}/model".removeprefix(contract.ROOT + "/")
    assert members == {top: (tarfile.DIRTYPE, None), f"{top}/blob": (tarfile.REGTYPE, b"pb"),
                       f"{top}/saved_model.pb": (tarfile.REGTYPE, b"pb"), f"{top}/variables": (tarfile.DIRTYPE, None),
                       f"{top}/variables/v.data": (tarfile.REGTYPE, b"v")}
    (tmp_path / "secret").write_bytes(b"key")
    for name, target in (("stolen", tmp_path / "secret"), ("loop", real), ("gone", real / "nothing")):
        (real / "variables" / name).symlink_to(target)
        with pytest.raises(InvalidModel, match=f"{name} is a link to .*, not to a file inside .*: refused"):
            sent(tmp_path, tmp_path / "model", f"{contract.MODEL_DIR}/model")
        (real / "variables" / name).unlink()


@pytest.mark.parametrize("members, limit, refusal", [
    ([("model.onnx", "symlink", "/etc/passwd"), ("zz_bulk", "file", b"x" * 50000)], 1 << 20, "as a link"),
    ([("zz_bulk", "file", b"x" * 50000), ("model.onnx", "file", b"onnx")], 20000, "more than 0 MiB"),
])
def test_a_refusal_mid_stream_closes_the_response(tmp_path, members, limit, refusal):
    """Left open, the daemon keeps copying and the container's removal waits for the API timeout."""
    response = FakeArchiveResponse(tar_stream(*members))
    with pytest.raises(StepFailed, match=refusal):
        receive(Archive(response), tmp_path, artifact_rule(ALLOWED), limit, "artifacts")
    assert response.closed
    response = FakeArchiveResponse(tar_stream(("model.onnx", "file", b"onnx")))
    assert receive(Archive(response), tmp_path / "whole", artifact_rule(ALLOWED), limit, "artifacts") == \
        ["model.onnx"] and response.closed


def cache_rule(max_bytes=1 << 30):
    return plain_files(lambda name: bool(contract.CACHE_FILE.match(name)), max_bytes)


def test_a_cache_entry_refused_mid_file_leaves_no_temporary_file(tmp_path):
    with pytest.raises(StepFailed, match="more than 2 MiB of cache files"):
        receive(tar_stream(("timing-a.cache", "file", b"x" * (3 << 20)), top="cache"), tmp_path, cache_rule(),
                2 << 20, "cache files", replace=True)
    assert list(tmp_path.iterdir()) == []


def test_a_cache_entry_on_a_full_disk_is_an_oserror_and_leaves_nothing(tiny_disk):
    (tiny_disk / "timing-a.cache").write_bytes(b"old")
    with pytest.raises(OSError, match="No space left"):
        receive(tar_stream(("timing-a.cache", "file", b"x" * (256 << 10)), top="cache"), tiny_disk, cache_rule(),
                1 << 20, "cache files", replace=True)
    assert [p.name for p in tiny_disk.iterdir()] == ["timing-a.cache"]
    assert (tiny_disk / "timing-a.cache").read_bytes() == b"old"         # whole or not at all


def test_inputs_that_cannot_spool_are_one_error_and_small_ones_never_touch_the_disk(tiny_disk, monkeypatch):
    from trtkit import transfer
    fill(tiny_disk)
    small = Inputs(tiny_disk)
    small.data(f"{contract.WORK}/{contract.PLAN}", b"{}")
    archive = small.finish()
    assert requests.utils.super_len(archive) > 0     # requests sizes the body: a spooled file would spill here
    monkeypatch.setattr(transfer, "SPOOL_BYTES", 1024)
    with pytest.raises(OutputNotWritable, match=f"cannot write trtkit's cache in {tiny_disk} .No space left"):
        Inputs(tiny_disk).data(f"{contract.WORK}/{contract.PLAN}", b"x" * 4096)
