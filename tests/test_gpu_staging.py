"""benchmarks/gpu_proof/stage.sh's CPU side on small inputs: pieces.py splits what is too big, lists every piece
with its sha256 for stash.sh, refuses a piece over the limit, and plans the calls; stash.sh (when ../shared is
there) stores the pieces of two calls from that list. The save and load of base.tar.xz: test_images.py."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PIECES = REPO / "benchmarks" / "gpu_proof" / "pieces.py"
STASH = REPO.parent / "shared" / "gpu" / "stash.sh"
LIMIT = 1000        # bytes, for PIECE_LIMIT_BYTES; the calls hold 4 * LIMIT


def pieces(*arguments, check=True, transfer=4 * LIMIT) -> subprocess.CompletedProcess:
    """pieces.py with pieces of at most LIMIT bytes and calls of `transfer` (besides the 1 MiB margin)."""
    env = {**os.environ, "PIECE_LIMIT_BYTES": str(LIMIT), "TRANSFER_LIMIT_BYTES": str(transfer + (1 << 20))}
    result = subprocess.run([sys.executable, str(PIECES), *map(str, arguments)], env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0 or not check, result.stderr
    return result


def small_kit(root: Path) -> Path:
    """A kit as stage.sh leaves it, with pieces of a few hundred bytes and one file to split."""
    kit = root / ".gpu-kit"
    for path, size in {"infra/stash.sh": 50, "trt/SHA256SUMS": 80, "trt/kit.tar.xz.part00": LIMIT,
                       "trt/kit.tar.xz.part01": 300, "docker.tar.xz": 900, "wheels/a-1-py3-none-any.whl": 200,
                       "wheels/b-1-py3-none-any.whl": 300, "image-wheels/c-1-py3-none-any.whl": 100,
                       "keras-wheels/d-1-py3-none-any.whl": 100, "base.tar.xz": 700,
                       "work/origin_lstm/model.onnx": 5000, "zoo/models-out/vit/model.onnx": 2 * LIMIT}.items():
        (kit / path).parent.mkdir(parents=True, exist_ok=True)
        (kit / path).write_bytes(os.urandom(size))
    return kit


def test_a_file_over_the_limit_is_cut_into_parts_that_join_back(tmp_path):
    data = os.urandom(2 * LIMIT + 1)
    (tmp_path / "wheelhouse.tar").write_bytes(data)
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "wheelhouse.tar.part09").write_text("an earlier run's part")
    pieces("split", tmp_path / "wheelhouse.tar", kit / "wheelhouse.tar")
    parts = sorted(kit.iterdir())
    assert [p.name for p in parts] == [f"wheelhouse.tar.part0{i}" for i in range(3)]
    assert [p.stat().st_size for p in parts] == [LIMIT, LIMIT, 1] and b"".join(p.read_bytes() for p in parts) == data
    assert not (tmp_path / "wheelhouse.tar").exists()

    (tmp_path / "base.tar.xz").write_bytes(b"small")
    pieces("split", tmp_path / "base.tar.xz", kit / "base.tar.xz")
    assert (kit / "base.tar.xz").read_bytes() == b"small"


def test_the_list_names_every_piece_with_its_sha256_and_the_calls_carry_them_all(tmp_path):
    kit = small_kit(tmp_path)
    result = pieces("list", kit, 0)
    assert result.stdout.strip().endswith("6 pieces; " + f"{kit}/CALLS.md: 2 calls"), result.stdout
    listed = [line.split("  ") for line in (kit / "infra" / "PIECES.sha256").read_text().splitlines()]
    # trt/ has its own SHA256SUMS (assemble.sh), infra/ comes with the first call, work/ and zoo/ are packed by
    # stage.sh (zoo/'s files over the limit are split then, so they are not refused here).
    assert [path for _, path in listed] == ["base.tar.xz", "docker.tar.xz", "image-wheels/c-1-py3-none-any.whl",
                                           "keras-wheels/d-1-py3-none-any.whl", "wheels/a-1-py3-none-any.whl",
                                           "wheels/b-1-py3-none-any.whl"]
    assert all(hashlib.sha256((kit / path).read_bytes()).hexdigest() == digest for digest, path in listed)

    calls = (kit / "CALLS.md").read_text()
    assert '1. ' in calls and '"' + ".gpu-kit/infra" + '"' in calls.split("2. ")[0]
    assert "bash .gpu-kit/infra/stash.sh" in calls.split("2. ")[0] and "bash /tmp/kit/infra/stash.sh" in calls
    for unit in ("trt/SHA256SUMS", "trt/kit.tar.xz.part00", "trt/kit.tar.xz.part01", "docker.tar.xz", "wheels",
                 "image-wheels", "keras-wheels", "base.tar.xz"):
        assert calls.count(f'".gpu-kit/{unit}"') == 1, unit


def test_a_piece_over_the_limit_is_refused(tmp_path):
    kit = small_kit(tmp_path)
    (kit / "docker.tar.xz").write_bytes(os.urandom(LIMIT + 1))
    result = pieces("list", kit, check=False)
    assert result.returncode == 1 and "over " in result.stderr and "docker.tar.xz" in result.stderr, result.stderr
    assert not (kit / "infra" / "PIECES.sha256").exists()


def test_a_working_tree_too_big_for_a_piece_beside_it_is_refused(tmp_path):
    result = pieces("list", small_kit(tmp_path), 4 * LIMIT, check=False)
    assert result.returncode == 1 and "does not fit one call beside the working tree" in result.stderr


@pytest.mark.skipif(not STASH.is_file(), reason="../shared/gpu/stash.sh is not beside this checkout")
def test_stash_stores_the_pieces_of_two_calls_from_the_list(tmp_path):
    kit = small_kit(tmp_path)
    for name in ("stash.sh", "assemble.sh"):
        (kit / "infra" / name).write_bytes((STASH.parent / name).read_bytes())
    (kit / "trt").rename(tmp_path / "trt-aside")      # the TensorRT kit's own path is assemble.sh's test
    pieces("list", kit, transfer=20 * LIMIT)
    env = {**os.environ, "STASH_KIT": str(tmp_path / "tmp-kit"), "STASH_CHUNKS": str(tmp_path / "chunks"),
           "STASH_PREFIX": str(tmp_path / "trt86")}
    aside = tmp_path / "second-call"
    aside.mkdir()
    (kit / "base.tar.xz").rename(aside / "base.tar.xz")    # this one comes with the second call
    first = subprocess.run(["bash", str(kit / "infra" / "stash.sh"), str(kit)], env=env, capture_output=True,
                           text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1].startswith(f"[stash] {tmp_path / 'tmp-kit'} lacks: base.tar.xz;")

    second_tree = tmp_path / "call2" / ".gpu-kit"
    second_tree.mkdir(parents=True)
    (aside / "base.tar.xz").rename(second_tree / "base.tar.xz")
    second = subprocess.run(["bash", str(tmp_path / "tmp-kit" / "infra" / "stash.sh"), str(second_tree)], env=env,
                            capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "[stash] stored base.tar.xz" in second.stdout and " lacks: nothing;" in second.stdout


@pytest.mark.parametrize("phase", ["export", "precision-export", "zoo-export"])
def test_an_export_phase_without_the_stand_in_image_stops_before_touching_its_folders(tmp_path, phase):
    """Staging from a fresh machine: without `make setup` there is no stand-in image, and the phase says so
    (before, each export failed on its own and the phase exited 0, leaving nothing to stage)."""
    work = tmp_path / "work"
    (work / "precision").mkdir(parents=True)
    (work / "precision" / "kept").write_text("an earlier export")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "WORK": str(work),
           "ZOO": str(tmp_path / "zoo")}
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_proof" / "run.sh"), phase], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"run.sh {phase}: needs the stand-in image trtkit/standin:19.07-py3 "
                                     "(make setup builds it)")
    assert (work / "precision" / "kept").read_text() == "an earlier export" and not (tmp_path / "zoo").exists()
