"""toolkit/staging.py: --out published by rename, and the places it refuses."""
import errno
import json
import os
from pathlib import Path

import pytest

from trtkit.errors import OutputNotWritable
from trtkit.staging import Staging, foreign_entries, refuse_protected, replace_folder


def test_staging_publishes_by_rename_and_cleans_up(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "trtkit.json").write_text(json.dumps({"artifacts": [{"name": "model.onnx"}]}))
    (out / "model.onnx").write_text("previous build")
    with Staging(out, force=False, protected={}) as staging:
        (staging.result / "model.onnx").write_text("new")
        staging.publish()
    assert [p.name for p in out.iterdir()] == ["model.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with Staging(tmp_path / "failed", force=False, protected={}):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with pytest.raises(OutputNotWritable):
        Staging(tmp_path / "out" / "model.onnx" / "x", force=False, protected={})


def test_a_publish_that_fails_halfway_puts_the_earlier_output_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "trtkit.json").write_text(json.dumps({"artifacts": [{"name": "model.onnx"}]}))
    (out / "model.onnx").write_text("previous build")
    real_rename = os.rename

    def second_rename_fails(source, target):
        if Path(source).name == "result":
            raise OSError(errno.EXDEV, "simulated")
        real_rename(source, target)

    with Staging(out, force=False, protected={}) as staging:
        monkeypatch.setattr(os, "rename", second_rename_fails)
        with pytest.raises(OutputNotWritable):
            staging.publish()
        monkeypatch.setattr(os, "rename", real_rename)
    assert (out / "model.onnx").read_text() == "previous build"


def test_a_failed_build_removes_the_folders_above_out_it_made_while_they_are_empty(tmp_path):
    with Staging(tmp_path / "deep" / "a" / "out", force=False, protected={}):
        pass                                                   # never published: the build failed
    assert not (tmp_path / "deep").exists()
    with Staging(tmp_path / "deep" / "b" / "out", force=False, protected={}):
        (tmp_path / "deep" / "b" / "notes.txt").write_text("written meanwhile")
    assert [p.name for p in (tmp_path / "deep" / "b").iterdir()] == ["notes.txt"]
    with Staging(tmp_path / "made" / "out", force=False, protected={}) as staging:
        staging.publish()
    assert (tmp_path / "made" / "out").is_dir()


def test_foreign_entries(tmp_path):
    (tmp_path / "trtkit.json").write_text(json.dumps({"artifacts": [{"name": "model.onnx"}]}))
    (tmp_path / "model.onnx").write_text("x")
    (tmp_path / "report.md").write_text("x")
    assert foreign_entries(tmp_path) == []
    (tmp_path / "bench.png").symlink_to(tmp_path / "model.onnx")
    (tmp_path / "notes.txt").write_text("mine")
    assert foreign_entries(tmp_path) == ["bench.png", "notes.txt"]
    (tmp_path / "trtkit.json").write_text("not json")
    assert "model.onnx" in foreign_entries(tmp_path)


def test_protected_places(tmp_path):
    protected = {"the model": tmp_path / "m" / "model.h5", "your home folder": tmp_path / "home"}
    for out in (tmp_path, tmp_path / "m", tmp_path / "home", tmp_path / "m" / "model.h5" / "x"):
        with pytest.raises(OutputNotWritable, match="refusing"):
            refuse_protected(out, protected)
    refuse_protected(tmp_path / "elsewhere", protected)
    refuse_protected(tmp_path / "home" / "project" / "out", protected)   # inside $HOME is fine


@pytest.mark.parametrize("out", ["/", "/etc", "/usr", "/mnt/data"])
def test_a_top_level_folder_or_a_mount_point_is_never_an_output(monkeypatch, out):
    monkeypatch.setattr(os.path, "ismount", lambda path: str(path) == "/mnt/data")
    with pytest.raises(OutputNotWritable, match="a top-level folder or a mount point is never replaced"):
        refuse_protected(Path(out), {})
    refuse_protected(Path("/mnt/data/out"), {})


def test_a_folder_that_cannot_be_swapped_in_leaves_the_old_one_whole(tmp_path, monkeypatch):
    """replace_folder (the Triton model folder, the cache of finished builds): the old folder stays whole until the
    new one takes its place, so a swap that fails (or a reader meanwhile) never finds it half deleted."""
    dest = tmp_path / "model"
    (dest / "1").mkdir(parents=True)
    (dest / "config.pbtxt").write_text("old")
    (dest / "1" / "model.plan").write_bytes(b"old engine")
    real_rename = os.rename

    def rename(source, target):
        if Path(target) == dest and (Path(source) / "config.pbtxt").read_text() == "new":
            raise OSError(13, "Permission denied")
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        replace_folder(dest, lambda new: (new / "config.pbtxt").write_text("new"))
    assert (dest / "config.pbtxt").read_text() == "old" and (dest / "1" / "model.plan").read_bytes() == b"old engine"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    monkeypatch.setattr(os, "rename", real_rename)
    replace_folder(dest, lambda new: (new / "config.pbtxt").write_text("new"))
    assert [p.name for p in dest.iterdir()] == ["config.pbtxt"] and [p.name for p in tmp_path.iterdir()] == ["model"]
