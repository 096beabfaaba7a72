"""trtkit images: carry images to hosts with no registry (save, load) and derive toolchains there (derive)."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import image_ref, images
from ..console import show, user_errors
from ..docker_runner import DockerRunner

app = typer.Typer(no_args_is_help=True, help="Images for hosts with no registry: save, load, derive the toolchain.")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tar.xz")     # what save writes: a plain tar, gzip or xz (images.compressed)


def archive_path(path: Path) -> Path:
    """--output of save: any other name (x.zip, x.tgz) would be a plain tar under a misleading name."""
    if not path.name.endswith(ARCHIVE_SUFFIXES) or path.name in ARCHIVE_SUFFIXES:
        raise typer.BadParameter(f"{str(path)!r}: name the archive FILE.tar, or FILE.tar.gz or FILE.tar.xz "
                                 "to compress it")
    return path



@app.command()
@user_errors
def save(
    references: Annotated[list[str], typer.Argument(metavar="IMAGE:TAG", help="IMAGE:TAG of local images; the toolchain images derived from them come along.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Archive to write: FILE.tar, or FILE.tar.gz or FILE.tar.xz (smaller, slower) compressed.", callback=archive_path, show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE when it exists.")] = False,
) -> None:
    """Save images and their toolchain images into one archive (shared layers stored once)."""
    checked = [image_ref.whole_reference(r) for r in references]     # a usage error before any daemon
    saved = images.save(DockerRunner.connect(), checked, output, force)
    for image in saved:
        typer.echo(f"{image.reference}  {image.image_id}")
    typer.echo(f"{output}  {output.stat().st_size / 1e6:.1f} MB")


@app.command()
@user_errors
def load(
    archive: Annotated[Path, typer.Argument(metavar="FILE", help="Archive of `trtkit images save` or `docker save`: .tar, .tar.gz or .tar.xz.", exists=True, dir_okay=False, show_default=False)],
) -> None:
    """Load images from an archive; builds reuse a loaded toolchain image (same base id, same tag)."""
    for image in images.load(DockerRunner.connect(), archive):
        typer.echo(f"{image.reference}  {image.image_id}")


@app.command()
@user_errors
def derive(
    reference: Annotated[str, typer.Argument(metavar="IMAGE:TAG", help="Base image, e.g. nvcr.io/nvidia/tensorrt:24.05-py3.", show_default=False)],
    wheelhouse: Annotated[Optional[Path], typer.Option("--wheelhouse", help="Folder of wheels (`trtkit wheelhouse`): pip installs from it only. Default: $TRTKIT_WHEELHOUSE.", exists=True, file_okay=False)] = None,
) -> None:
    """Derive the toolchain image of IMAGE:TAG now (or find it already there), without building a model."""
    reference = image_ref.whole_reference(reference)
    toolchain = images.derive(DockerRunner.connect(), reference, wheelhouse)
    typer.echo(f"{toolchain.tag}  {toolchain.image_id}  {'derived' if toolchain.derived else 'reused'}")
    versions = ", ".join(f"{k} {v}" for k, v in sorted(toolchain.probe.items()) if isinstance(v, str))
    show(f"versions: {versions}")
