"""The trtkit command line: one module per command under toolkit/commands."""
from typing import Annotated, Optional

import typer

from toolkit import __version__
from toolkit.commands import bench, build, doctor, inspect

app = typer.Typer(
    name="trtkit", no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_enable=False,
    help="Turn a Keras model into a fast, verified TensorRT artifact inside a pinned NVIDIA container.",
)
app.command()(build.build)
app.command()(inspect.inspect)
app.command()(bench.bench)
app.command()(doctor.doctor)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trtkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                          help="Show the version and exit.")] = None) -> None:
    """trtkit: Keras -> ONNX / frozen graph / TensorRT engine, verified, in pinned containers."""


def main() -> None:
    app()
