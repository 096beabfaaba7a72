"""Air-gapped hosts: a toolchain derived offline from a wheelhouse, saved with its base, loaded back, reused."""
import gzip
import io
import json
import lzma
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import docker
import docker.errors
import pytest
import typer

from trtkit import images
from trtkit.commands.images import archive_path
from trtkit.console import live_progress
from trtkit.errors import ImageNotFound, ToolchainBuildFailed

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]

IMAGE_CACHE = Path(os.environ.get("TRTKIT_IMAGE_CACHE", "~/.cache/trtkit/images")).expanduser()
TF2ONNX = "tf2onnx==1.17.0"     # pinned for Python 3.11, the stand-in's Python


def build_image(client, reference: str, dockerfile: str, files: dict | None = None) -> str:
    """An image of this test's own: it starts with a unique label, so it shares no layer but its base's."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **(files or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    image, _ = client.images.build(fileobj=context, custom_context=True, tag=reference, rm=True, forcerm=True)
    return image.id


def remove_images(client, base_id: str) -> None:
    """A base image of this test and the toolchain images derived from it (children first), nothing else."""
    derived = client.images.list(filters={"label": f"org.trtkit.base.id={base_id}"})
    for image_id in [image.id for image in derived] + [base_id]:
        try:
            client.images.remove(image_id, force=True)
        except docker.errors.ImageNotFound:
            pass


@pytest.fixture
def airgap_base(docker_client, standin):
    """The stand-in without tf2onnx: deriving its toolchain must install exactly that one pinned package."""
    reference = f"trtkit-test/airgap:{uuid.uuid4().hex[:12]}"
    image_id = build_image(docker_client, reference,
                           f"FROM {standin}\nLABEL org.trtkit.test={reference}\nRUN pip uninstall -y tf2onnx\n")
    yield reference
    remove_images(docker_client, image_id)


@pytest.fixture
def small_image(docker_client):
    reference = f"trtkit-test/airgap-small:{uuid.uuid4().hex[:12]}"
    image_id = build_image(docker_client, reference, f"FROM scratch\nLABEL org.trtkit.test={reference}\nCOPY blob /\n",
                           {"blob": os.urandom(1 << 20)})
    yield reference
    remove_images(docker_client, image_id)


@pytest.fixture
def wheelhouse(tmp_path):
    """The tf2onnx wheel: from images/build.sh's download when there, else from the package index."""
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    cached = sorted((IMAGE_CACHE / "wheels").glob("tf2onnx-1.17.0-*.whl"))
    if cached:
        (folder / cached[0].name).write_bytes(cached[0].read_bytes())
    elif subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                         "-d", str(folder), TF2ONNX]).returncode != 0:
        pytest.skip(f"no {TF2ONNX} wheel: not in {IMAGE_CACHE}/wheels and the package index is unreachable")
    return folder


def error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr[-2000:]
    return lines[-1]


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_a_toolchain_derived_offline_is_saved_loaded_and_reused(trtkit, trtkit_env, docker_client, airgap_base,
                                                                wheelhouse, tmp_path):
    from trtkit.toolchain import context_tar, toolchain_tag
    base_id = docker_client.images.get(airgap_base).id
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = trtkit("images", "derive", airgap_base, env={**trtkit_env, "TRTKIT_WHEELHOUSE": str(empty)})
    assert refused.returncode == 20 and "no wheels (*.whl) in the wheelhouse" in error_line(refused)

    derived = trtkit("images", "derive", airgap_base, "--wheelhouse", wheelhouse)
    assert derived.returncode == 0, derived.stderr[-3000:]
    assert "Looking in links: /opt/trtkit/toolchain/wheelhouse" in derived.stderr   # PIP_FIND_LINKS, and no index
    assert "Successfully installed tf2onnx-1.17.0" in derived.stderr and "tf2onnx 1.17.0" in derived.stderr
    tag, toolchain_id, state = derived.stdout.split()
    assert state == "derived"
    # Named from images/toolchain only, not the wheels: derived online, it would be the same tag.
    assert tag == toolchain_tag(base_id, context_tar())

    archive = tmp_path / "airgap.tar"
    saved = trtkit("images", "save", airgap_base, "-o", archive)
    assert saved.returncode == 0, saved.stderr[-2000:]
    assert saved.stdout.splitlines()[:2] == [f"{airgap_base}  {base_id}", f"{tag}  {toolchain_id}"]
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert sorted(t for image in manifest for t in image["RepoTags"]) == sorted([airgap_base, tag])
    # One archive: the 2 GB the toolchain shares with its base are in it once.
    assert archive.stat().st_size < 1.2 * docker_client.images.get(airgap_base).attrs["Size"]

    remove_images(docker_client, base_id)
    for image_id in (base_id, toolchain_id):
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(image_id)

    loaded = trtkit("images", "load", archive)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert sorted(loaded.stdout.splitlines()) == sorted([f"{airgap_base}  {base_id}", f"{tag}  {toolchain_id}"])

    again = trtkit("images", "derive", airgap_base)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.split() == [tag, toolchain_id, "reused"]
    assert "deriving toolchain image" not in again.stderr and "Step 1/" not in again.stderr


@pytest.mark.parametrize("suffix, opener", [(".tar.gz", gzip.open), (".tar.xz", lzma.open)])
def test_compressed_archive_replaces_a_file_only_with_force_and_loads(trtkit, docker_client, small_image, tmp_path,
                                                                       suffix, opener):
    image_id = docker_client.images.get(small_image).id
    out = tmp_path / "out"
    out.mkdir()
    archive = out / f"small{suffix}"
    archive.write_bytes(b"keep me")

    refused = trtkit("images", "save", small_image, "-o", archive)
    assert refused.returncode == 16 and "already exists: pass --force" in error_line(refused)
    assert archive.read_bytes() == b"keep me" and listing(out) == [archive.name]

    forced = trtkit("images", "save", small_image, "-o", archive, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert forced.stdout.splitlines()[0] == f"{small_image}  {image_id}"
    assert listing(out) == [archive.name]
    with opener(archive) as f, tarfile.open(fileobj=f) as tar:
        assert "manifest.json" in tar.getnames()

    docker_client.images.remove(small_image, force=True)
    loaded = trtkit("images", "load", archive)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.splitlines() == [f"{small_image}  {image_id}"]


def test_a_missing_image_is_one_line_and_writes_nothing(trtkit, small_image, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = trtkit("images", "save", small_image, "trtkit-test/airgap:no-such-tag", "-o", out / "x.tar")
    assert result.returncode == 13
    assert error_line(result).startswith("error: trtkit-test/airgap:no-such-tag is not on this host")
    assert listing(out) == []


def test_a_full_disk_leaves_no_partial_archive(trtkit, small_image, tiny_disk):
    result = trtkit("images", "save", small_image, "-o", tiny_disk / "small.tar")
    assert result.returncode == 16 and "No space left on device" in error_line(result)
    assert listing(tiny_disk) == []


def test_an_interrupted_save_leaves_no_partial_archive(trtkit_env, standin, tmp_path):
    """Ctrl-C once the temporary file is there (the daemon is still writing its 2 GB export)."""
    archive = tmp_path / "standin.tar"
    process = subprocess.Popen([sys.executable, "-m", "trtkit", "images", "save", standin, "-o", str(archive)],
                               env=trtkit_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".standin.tar.*.part")):
        assert process.poll() is None and time.monotonic() < deadline, "the save never began"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted by SIGINT" in stderr
    assert listing(tmp_path) == []


def test_wheelhouse_downloads_pins_and_leaves_tf_keras_dependencies_out(trtkit, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# two small wheels\nsix==1.16.0\ntf-keras==2.21.0\n")
    result = trtkit("wheelhouse", "25.01-py3", "--python", "3.11", "--requirements", requirements,
                    "-o", tmp_path / "wheels")
    if result.returncode == 14:
        pytest.skip(f"the package index is unreachable: {error_line(result)}")
    assert result.returncode == 0, result.stderr[-2000:]
    # Without --no-deps, tf-keras would bring the full tensorflow wheel (572 MB).
    assert listing(tmp_path / "wheels") == ["six-1.16.0-py2.py3-none-any.whl", "tf_keras-2.21.0-py3-none-any.whl"]
    assert "2 wheels" in result.stdout.splitlines()[-1]


def test_wheelhouse_needs_the_python_of_an_unknown_tag(trtkit, tmp_path):
    result = trtkit("wheelhouse", "99.01-py3", "-o", tmp_path / "wheels")
    assert result.returncode == 2 and "--python" in result.stderr
    assert not (tmp_path / "wheels").exists()


@pytest.mark.parametrize("content", [b"not an archive\n", os.urandom(4096)])
def test_an_archive_that_is_not_images_is_one_line_with_a_documented_code(trtkit, tmp_path, content):
    (tmp_path / "bad.tar").write_bytes(content)
    result = trtkit("images", "load", tmp_path / "bad.tar")
    assert result.returncode == 13, result.stderr[-1500:]
    assert error_line(result).startswith("error: docker load failed: ") and "Traceback" not in result.stderr


def test_daemon_and_pip_failures_of_images_and_wheelhouse_have_documented_codes(tmp_path):
    with pytest.raises(ImageNotFound, match="docker load failed: unexpected EOF"):
        images.loaded_names([{"error": "unexpected EOF\nmore"}], live_progress())

    def refused(*args, **kwargs):
        raise docker.errors.APIError("500 Server Error", explanation="layer does not exist")

    api = SimpleNamespace(base_url="http+docker://localhost", api_version="1.45", get=refused)
    runner = SimpleNamespace(client=SimpleNamespace(api=api))
    with pytest.raises(ImageNotFound, match="docker save failed: layer does not exist"):
        list(images.exported(runner, ["x:1"]))
    with pytest.raises(ToolchainBuildFailed, match=r"pip download failed \(exit 1\)") as raised:
        images.run_pip(["download", "--no-index", "--find-links", str(tmp_path), "-d", str(tmp_path),
                        "no-such-package-trtkit"])
    assert raised.value.exit_code == 20


def test_save_writes_only_tar_tar_gz_and_tar_xz_names(trtkit, tmp_path):
    for name in ("x.tar", "x.tar.gz", "x.tar.xz"):
        assert archive_path(tmp_path / name) == tmp_path / name
    for name in ("x.zip", "x.xz", "x.tgz", "x", ".tar.gz", ".tar.xz"):
        with pytest.raises(typer.BadParameter, match="name the archive FILE.tar, or FILE.tar.gz or FILE.tar.xz"):
            archive_path(tmp_path / name)
    result = trtkit("images", "save", "trtkit/standin:19.07-py3", "-o", tmp_path / "x.zip")
    assert result.returncode == 2 and "FILE.tar.gz" in result.stderr, result.stderr[-1500:]
    assert not (tmp_path / "x.zip").exists()
