"""The trtkit command line: one module per command under toolkit/commands."""
from typing import Annotated, Optional

import typer

from . import __version__
from .commands import bench, build, check, doctor, images, inspect, lock, wheelhouse
from .console import set_verbosity

app = typer.Typer(
    name="trtkit", no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_enable=False,
    help="Turn a Keras model into a fast, verified TensorRT artifact inside a pinned NVIDIA container.",
)
app.command()(build.build)
app.command()(inspect.inspect)
app.command()(bench.bench)
app.command()(check.check)
app.command()(lock.lock)
app.command()(doctor.doctor)
app.command()(wheelhouse.wheelhouse)
app.add_typer(images.app, name="images")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trtkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Show the version and exit.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show every container log line.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show only errors and results.")] = False,
) -> None:
    """trtkit: Keras -> ONNX / frozen graph / TensorRT engine, verified, in pinned containers."""
    set_verbosity(verbose, quiet)


def main() -> None:
    app()
