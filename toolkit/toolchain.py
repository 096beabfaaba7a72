"""The toolchain image: derived once from IMAGE:TAG, reused by every later build.

Its name holds the base image's id and a hash of the build context
(images/toolchain), so a new base digest or a changed setup gives a new
image, and anything else reuses the existing one: python_setup.sh and the
pip installs run once per base image, never per build. What the image's
stack can do is probed once, in a container, and cached by image id.

On a host with no package index, a wheelhouse (a folder of wheels, see
`trtkit wheelhouse`) goes into the build context and pip installs from it only:
`trtkit images derive --wheelhouse DIR`, or TRTKIT_WHEELHOUSE=DIR for any command.
"""
import fcntl
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trtkit_steps import contract

from . import __version__
from .console import show
from .docker_runner import LABEL, DockerRunner, Limits
from .errors import ToolchainBuildFailed
from .files import write_atomically
from .resources import scripts_dir, toolchain_dir
from .transfer import Inputs

REPOSITORY = "trtkit/toolchain"
BASE_ID_LABEL = "org.trtkit.base.id"
WHEELHOUSE_ENV = "TRTKIT_WHEELHOUSE"
WHEELHOUSE = "wheelhouse"       # its folder in the context; setup.sh installs from it when present


@dataclass(frozen=True)
class Toolchain:
    tag: str
    image_id: str
    probe: dict
    base_id: str                # the IMAGE:TAG it was derived from
    base_digests: list[str]
    derived: bool = False       # built by this call, not reused


def cache_dir() -> Path:
    root = os.environ.get("TRTKIT_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "trtkit")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def wheelhouse_from_env() -> Path | None:
    value = os.environ.get(WHEELHOUSE_ENV)
    return Path(value).expanduser() if value else None


def wheels(wheelhouse: Path) -> list[Path]:
    """The wheelhouse's wheels; none is refused here, not after minutes of a build that cannot install."""
    found = sorted(p for p in wheelhouse.glob("*.whl") if p.is_file())
    if not found:
        raise ToolchainBuildFailed(f"no wheels (*.whl) in the wheelhouse {wheelhouse}",
                                   hint="make one on a connected machine with `trtkit wheelhouse TAG -o DIR`")
    return found


def context_tar(wheelhouse: Path | None = None) -> bytes:
    """images/toolchain as a reproducible tar: same files, same bytes, same hash; the wheelhouse's
    wheels, when given, under wheelhouse/ (the tag hashes the context without them)."""
    root = toolchain_dir()
    files = [(path, str(path.relative_to(root))) for path in sorted(root.rglob("*"))
             if path.is_file() and "__pycache__" not in path.parts]
    if wheelhouse:
        files += [(path, f"{WHEELHOUSE}/{path.name}") for path in wheels(wheelhouse)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, name in files:
            info = tar.gettarinfo(str(path.resolve()), arcname=name)    # a linked wheel goes in as its file
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as f:
                tar.addfile(info, f)
    return buffer.getvalue()


def toolchain_tag(base_image_id: str, context: bytes) -> str:
    return f"{REPOSITORY}:{base_image_id.split(':')[-1][:12]}-{hashlib.sha256(context).hexdigest()[:12]}"


def ensure_toolchain(runner: DockerRunner, base_reference: str, limits: Limits, on_line,
                     wheelhouse: Path | None = None) -> Toolchain:
    """The toolchain image of base_reference, derived when missing: offline from `wheelhouse`
    (default $TRTKIT_WHEELHOUSE) when one is given. Derived online or offline, its tag is the same."""
    base = runner.image(base_reference)
    tag = toolchain_tag(base.id, context_tar())
    with _one_derivation(tag):
        existing = runner.client.images.list(name=tag)
        if existing:
            image = existing[0]
        else:
            wheelhouse = wheelhouse or wheelhouse_from_env()
            show(f"deriving toolchain image {tag} from {base_reference} (once per base image)"
                 + (f", installing only from the wheelhouse {wheelhouse}" if wheelhouse else ""))
            image = runner.build_image(context_tar(wheelhouse), tag, buildargs={"BASE_IMAGE": base_reference},
                                       labels={LABEL: "toolchain", "org.trtkit.base": base_reference,
                                               BASE_ID_LABEL: base.id, "org.trtkit.version": __version__},
                                       on_line=on_line)
    return Toolchain(tag, image.id, probe(runner, image.id, limits), base.id, base.attrs.get("RepoDigests", []),
                     derived=not existing)


@contextmanager
def _one_derivation(tag: str) -> Iterator[None]:
    """Held while a toolchain is looked for and derived: builds of a new tag started together (a project's
    matrix) derive it once, the others wait and reuse it. Without a writable cache, no wait."""
    path = cache_dir() / "locks" / f"{tag.split(':')[-1]}.lock"
    try:
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError:
        fd = None
    try:
        if fd is not None and not _locked_at_once(fd):
            show(f"waiting for another trtkit run that is deriving {tag}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _locked_at_once(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def image_as_is(runner: DockerRunner, reference: str, limits: Limits) -> Toolchain:
    """The image itself, for steps that need only what a TensorRT image has (TensorRT, numpy): no setup."""
    image = runner.image(reference)
    return Toolchain(image.id, image.id, probe(runner, image.id, limits), image.id, image.attrs.get("RepoDigests", []))


def probe(runner: DockerRunner, image_id: str, limits: Limits) -> dict:
    """The stack's versions and abilities, probed once per image (and probe script)."""
    probe_script = scripts_dir() / "trtkit_steps" / "probe.py"
    key = hashlib.sha256(image_id.encode() + probe_script.read_bytes()).hexdigest()[:16]
    cached = cache_dir() / "probes" / f"{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    lines: list[str] = []
    inputs = Inputs(cache_dir())
    inputs.scripts()
    environment = {"PYTHONPATH": contract.SCRIPTS, "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    with runner.box(image_id, ["python3", "-m", "trtkit_steps.probe"], limits, environment, [], "probe") as box:
        with inputs.finish() as archive:
            box.put(archive)
        code = box.run(lines.append)
    result = next((json.loads(line) for line in lines if line.startswith("{")), None)
    if code != 0 or result is None:
        raise ToolchainBuildFailed(f"probing {image_id} failed (exit {code}): {' | '.join(lines[-5:])}")
    cached.parent.mkdir(exist_ok=True)
    # whole or absent: builds running at once (a matrix) read it meanwhile
    write_atomically(cached, lambda f: f.write(json.dumps(result, indent=2, sort_keys=True).encode()))
    return result
