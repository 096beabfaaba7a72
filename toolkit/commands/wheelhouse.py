"""trtkit wheelhouse: on a connected machine, the wheels a tag's toolchain installs, for hosts with no index."""
import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import images
from ..console import show, user_errors
from ..plan import DEFAULT_IMAGE
from ..tags import known_tag


@user_errors
def wheelhouse(
    tag: Annotated[str, typer.Argument(metavar="TAG", help="Container tag whose Python the wheels are for, e.g. 24.05-py3.", show_default=False)],
    out: Annotated[Path, typer.Option("--output", "-o", help="Folder to download into (made when missing; wheels already there are kept).", file_okay=False, show_default=False)],
    python: Annotated[Optional[str], typer.Option("--python", help="Python of the image, e.g. 3.10. Default: the tag's, from the README's table; required for other tags.", show_default=False)] = None,
    requirements: Annotated[Optional[Path], typer.Option("--requirements", help="Requirements file instead of the toolchain's pins for that Python.", exists=True, dir_okay=False)] = None,
) -> None:
    """Download the toolchain's pinned wheels (and their dependencies) for TAG's Python into a folder."""
    python = python or (info.python if (info := known_tag(tag)) else None)
    if python is None:
        raise typer.BadParameter(f"{tag} is not in trtkit's table of tags: give its Python", param_hint="--python")
    if not re.fullmatch(r"3\.[0-9]{1,2}", python):
        raise typer.BadParameter(f"expected a Python version like 3.10, got {python!r}", param_hint="--python")
    requirements = requirements or images.pinned_requirements(python)
    if not requirements.is_file():
        raise typer.BadParameter(f"trtkit has no pinned requirements for Python {python}", param_hint="--requirements")
    wheels = images.download_wheels(images.requirement_lines(requirements), python, out)
    for wheel in wheels:
        typer.echo(wheel.name)
    typer.echo(f"{out}  {len(wheels)} wheels, {sum(w.stat().st_size for w in wheels) / 1e6:.1f} MB")
    show(f"on the host with no index: trtkit images derive {DEFAULT_IMAGE}:{tag} --wheelhouse {out}")
