"""The engine's inputs and outputs as predict() sees them: by position, engine name or Keras name."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .compat import MANIFEST_NAME, IncompatibleEngine

__all__ = ["TensorSpec", "user_dtype", "tensor_specs", "map_inputs", "check_dtypes", "arrange_outputs"]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the engine, as predict() sees it."""
    name: str                  # the engine's tensor name; for trtkit's engines, the Keras input or output name
    keras_tensor: str | None   # the Keras tensor it came from ("lstm_1_input:0"), from trtkit.json
    dtype: np.dtype            # what predict() takes and returns: float32 where the engine has float16
    engine_dtype: np.dtype     # what the engine's tensor holds

    @property
    def aliases(self) -> tuple[str, ...]:
        """The names a dict of inputs may use for it."""
        names = [self.name]
        if self.keras_tensor:
            names += [self.keras_tensor, re.sub(r":\d+$", "", self.keras_tensor)]
        return tuple(dict.fromkeys(names))

    def describe(self) -> str:
        return f"{self.name} (Keras {self.keras_tensor})" if self.keras_tensor else self.name


def user_dtype(engine_dtype: np.dtype) -> np.dtype:
    """What the user sees of an engine tensor's type: float16 becomes float32 at the edge."""
    return np.dtype(np.float32) if engine_dtype == np.float16 else np.dtype(engine_dtype)


def tensor_specs(io: Sequence[tuple[str, bool, np.dtype]], names: dict | None
                 ) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of the engine's tensors [(name, is input, dtype)], in Keras' order where trtkit.json
    names them; tensors it does not name follow in the engine's order."""
    specs = []
    for is_input, key in ((True, "inputs"), (False, "outputs")):
        engine_names = {name: dtype for name, flag, dtype in io if flag == is_input}
        recorded = [entry for entry in (names or {}).get(key) or [] if isinstance(entry, dict)]
        unknown = [entry.get("name") for entry in recorded if entry.get("name") not in engine_names]
        if unknown:
            raise IncompatibleEngine(f"{MANIFEST_NAME} names {key} {unknown} that the engine does not have; "
                                     f"its {key} are {sorted(engine_names)}")
        keras = {entry["name"]: entry.get("keras_tensor") for entry in recorded}
        order = list(keras) + [name for name in engine_names if name not in keras]
        specs.append([TensorSpec(name, keras.get(name), user_dtype(engine_names[name]), np.dtype(engine_names[name]))
                      for name in order])
    return specs[0], specs[1]


def map_inputs(x: Any, inputs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """{engine input name: array} from one array, a list by position, or a dict by engine or Keras name."""
    if isinstance(x, dict):
        return _inputs_by_name(x, inputs)
    if len(inputs) == 1:
        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
            x = x[0]
        return {inputs[0].name: np.asarray(x)}
    if not isinstance(x, (list, tuple)) or len(x) != len(inputs):
        raise ValueError(f"the engine has {len(inputs)} inputs, {', '.join(s.describe() for s in inputs)}: "
                         f"pass a list of {len(inputs)} arrays in that order, or a dict by name")
    return {spec.name: np.asarray(value) for spec, value in zip(inputs, x)}


def _inputs_by_name(x: dict, inputs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for key, value in x.items():
        spec = next((s for s in inputs if key in s.aliases), None)
        if spec is None:
            raise ValueError(f"{key!r} is not an input of the engine; its inputs are "
                             f"{', '.join(s.describe() for s in inputs)}")
        if spec.name in found:
            raise ValueError(f"input {spec.describe()} is given twice")
        found[spec.name] = np.asarray(value)
    missing = [s.describe() for s in inputs if s.name not in found]
    if missing:
        raise ValueError(f"no data for input {', '.join(missing)}")
    return found


def check_dtypes(arrays: dict[str, np.ndarray], inputs: Sequence[TensorSpec]) -> None:
    """Casts within a kind (float64 or float16 to float32, float32 to the engine's float16) are made; no others."""
    for spec in inputs:
        given = arrays[spec.name].dtype
        if not np.can_cast(given, spec.engine_dtype, casting="same_kind"):
            raise TypeError(f"input {spec.describe()} is {given}; the engine takes {spec.dtype}")


def arrange_outputs(results: dict[str, np.ndarray], outputs: Sequence[TensorSpec], as_dict: bool) -> Any:
    """Like Keras: one array, or a list in the model's output order; or a dict by name."""
    if as_dict:
        return {spec.name: results[spec.name] for spec in outputs}
    if len(outputs) == 1:
        return results[outputs[0].name]
    return [results[spec.name] for spec in outputs]
