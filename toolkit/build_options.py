"""The build options the contract declares (contract.BUILD_OPTIONS), as the command line sees them.

Each kind of option has one way to become a typer option, one parser from its command-line (or project-file)
value to its plan value, and one way back to arguments for reproduce.sh. A new option is a line in the
contract's table, the step that reads it, and its tests.
"""
import copy
import inspect
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from trtkit_steps import contract

from . import options


def param_name(option: Any) -> str:
    """The option's typer parameter, and its key in a project file: --opt-level is opt_level."""
    return option.flag.lstrip("-").replace("-", "_")


def _choices(option: Any) -> type[Enum]:
    return Enum(param_name(option).title().replace("_", ""), {c: c for c in option.choices}, type=str)  # type: ignore


def _annotation(option: Any) -> Any:
    """The typer annotation of one option, and its default as typer takes it."""
    low, high = option.bounds or (None, None)
    flags = f"{option.flag}/{option.negative}" if option.negative else option.flag
    info: dict[str, Any] = {"help": option.help}
    if option.kind == "choice":
        choice = _choices(option)
        return Annotated[choice, typer.Option(flags, **info)], choice(option.default)
    if option.kind == "flag":
        return Annotated[bool, typer.Option(flags, **info)], option.default
    if option.kind == "whole":
        kind = int if option.default is not None else Optional[int]
        return Annotated[kind, typer.Option(flags, min=low, max=high, show_default=option.default is not None,
                                            **info)], option.default
    if option.kind == "data":
        return Annotated[Optional[Path], typer.Option(flags, exists=True, dir_okay=option.folders, **info)], None
    if option.kind == "shapes":
        return Annotated[Optional[list[str]], typer.Option(flags, **info)], None
    kind = Optional[float] if option.kind == "number" else Optional[str]    # size, batches, names: text
    return Annotated[kind, typer.Option(flags, show_default=False, **info)], None


def _parameters() -> list[inspect.Parameter]:
    made = []
    for option in contract.BUILD_OPTIONS:
        annotation, default = _annotation(option)
        made.append(inspect.Parameter(param_name(option), inspect.Parameter.KEYWORD_ONLY, default=default,
                                      annotation=annotation))
    return made


def declared(after: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command (which takes them as **settings) the declared options, after its parameter `after`."""
    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command).parameters.values() if p.kind is not p.VAR_KEYWORD]
        at = [p.name for p in own].index(after) + 1
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at:]]
        command.__signature__ = inspect.Signature(own[:at] + _parameters() + keyword)  # type: ignore[attr-defined]
        return command
    return decorate


def _parsed(option: Any, value: Any) -> Any:
    """The plan value of one option from its typer value; typer.BadParameter in one line when it is wrong."""
    if value is None:
        return copy.deepcopy(option.default)
    if option.kind in ("choice", "flag", "whole", "data"):
        return value.value if isinstance(value, Enum) else value   # typer checked the choice, bounds and file
    if option.kind == "number":
        return options.finite_number(value, option.flag, *option.bounds)
    if option.kind == "size":
        return options.parse_size(value, param_name(option), *option.bounds)
    if option.kind == "batches":
        return options.parse_batch_set(value, option.flag, option.most)
    if option.kind == "names":
        return options.parse_tactic_sources(value)
    return options.parse_shapes(value)


def parse(values: dict[str, Any]) -> dict[str, Any]:
    """The plan's settings from the build command's values (given, defaults, or a project's), by parameter name."""
    settings = {option.key: _parsed(option, values[param_name(option)]) for option in contract.BUILD_OPTIONS}
    for option in contract.unmet_needs(settings):
        needed = contract.OPTIONS_BY_KEY[option.needs[0]]
        raise typer.BadParameter(f"{option.flag} needs {needed.flag}{' FILE' if needed.kind == 'data' else ''}: "
                                 f"{option.needs[1]}")
    return settings


def _argument(option: Any, value: Any) -> list[str]:
    """One option as reproduce.sh writes it: explicit whatever its value, unless it is unset (None, empty)."""
    if option.kind == "flag":
        return [option.flag] if value else [option.negative] if option.negative else []
    if option.kind == "shapes":
        return [a for name, dims in value.items() for a in (option.flag, f"{name}:" + "/".join(map(_dims, dims)))]
    if value is None or value == []:
        return []
    if option.kind == "data":
        return [option.flag, str(Path(value).absolute())]
    if option.kind == "size":
        return [option.flag, options.size_text(value)]
    if option.kind in ("batches", "names"):
        return [option.flag, ",".join(map(str, value))]
    return [option.flag, repr(value) if option.kind == "number" else str(value)]


def _dims(value: Any) -> str:
    return "x".join(map(str, value)) if isinstance(value, list) else str(value)


def arguments(settings: dict[str, Any]) -> list[str]:
    """`trtkit build` arguments that give these settings, every one spelled out."""
    return [a for option in contract.BUILD_OPTIONS for a in _argument(option, settings[option.key])]
