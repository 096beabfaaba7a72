"""toolkit/manifest.py: what trtkit.json records."""
from typing import cast

from trtkit.events import BuildRecord
from trtkit.manifest import Manifest
from trtkit.modelfile import ModelRef
from trtkit.plan import BuildPlan


def test_a_reused_build_records_the_model_and_image_this_build_was_asked_for(tmp_path):
    """The key holds the model's bytes and the image's id, not their names: a copy of the model elsewhere, or the
    same image by digest, reuses the build. Its manifest then names this build's model path (which `trtkit bench
    OUT` loads, and reproduce.sh builds) and image reference, not the finished build's."""

    from trtkit import manifest
    from trtkit.targets import TargetChoice

    first, copy = tmp_path / "a" / "model.h5", tmp_path / "b" / "copy.h5"
    for path in (first, copy):
        path.parent.mkdir()
        path.write_bytes(b"h5")
    finished = {"created": "then", "model": {"path": str(first), "format": "h5", "sha256": "s", "params": 3},
                "image": {"reference": "repo:tag", "id": "sha256:base", "repo_digests": [], "toolchain": "t",
                          "toolchain_id": "sha256:t"}}
    pinned = "repo@sha256:" + "0" * 64
    plan = BuildPlan(model=ModelRef(copy, "h5"), image=pinned)
    made = manifest.reused(cast(Manifest, finished), plan, TargetChoice("onnx", "test"), tmp_path, 0.0)
    assert made["model"] == {"path": str(copy), "format": "h5", "sha256": "s", "params": 3}
    assert made["image"]["reference"] == pinned and made["image"]["id"] == "sha256:base"
    assert made["reused_from"] == "then" and finished["model"]["path"] == str(first)


def test_an_engine_record_forged_by_an_onnx_build_is_not_kept(tmp_path):
    """Well-formed, so check_event takes it; but only the engine step makes an engine, so an ONNX build's
    manifest (and Triton's max_batch_size, which reads it) never carries one."""
    from trtkit import manifest
    from trtkit.modelfile import ModelRef
    from trtkit.targets import TargetChoice
    from trtkit.toolchain import Toolchain
    record = BuildRecord()
    record.apply({"event": "engine", "tensorrt": "8.6.1", "gpu": "forged", "compute_capability": "9.0",
                  "profiles": {"x": {"min": [1], "opt": [1], "max": [1]}}, "portability_note": "forged"})
    (tmp_path / "model.h5").write_bytes(b"h5")
    plan = BuildPlan(model=ModelRef(tmp_path / "model.h5", "h5"), image="i:t")
    toolchain = Toolchain("t", "sha256:t", {}, "sha256:base", [])
    for target, kept in (("onnx", None), ("engine", record.engine)):
        made = manifest.make(plan, TargetChoice(target, "test"), toolchain, record, tmp_path, 0.0)
        assert made["engine"] == kept
