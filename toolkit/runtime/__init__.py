"""Call a trtkit engine from your application: numpy in, numpy out, like Keras' Model.predict.

    from trtkit.runtime import Engine
    engine = Engine("trtkit-out/model")          # the output folder, or a .plan
    y = engine.predict(x)

- Before loading, the engine is checked against trtkit.json beside it: the TensorRT release and the GPU's
  compute capability must be the ones it was built with (else IncompatibleEngine says what to rebuild);
  another GPU model of the same capability loads, with a warning that it was tuned elsewhere.
- Inputs by position, or by name in a dict (the engine's name, or the Keras name: `lstm_1_input` or
  `lstm_1_input:0`); one output comes back as an array, several as a list in Keras' order (as_dict=True:
  a dict by name). Any batch the optimization profiles allow; a larger one is split into runs.
- Small batches (up to small_batch_bytes of input) replay a CUDA graph of copy-in, run and copy-out,
  captured per input shape on its first use and kept in a bounded LRU cache (graph_cache_size).
- Other batches stream through pinned staging buffers in chunks of about stream_chunk_bytes: host-to-device
  copies, compute and device-to-host copies run on three streams and overlap, while a thread pool fills the
  next chunk from your array and empties finished ones into the result. An input already in page-locked
  memory (made by pinned_empty(), or pinned by PyTorch or cudaHostRegister) of the engine's dtype is copied
  to the GPU straight from your array, without staging: for the largest batches that is the fastest way in.
- Thread-safe: each predict() takes a lane (one execution context, its streams, buffers and graphs) for the
  optimization profile its shapes need. TensorRT lets only one live execution context hold a profile of an
  engine with dynamic shapes, so an engine has one lane per profile: calls on one profile run one at a time,
  and at most max_lanes calls run at once. Further concurrent calls wait for a lane.
- Float16 inputs and outputs of the engine are converted at the edge: you pass and get float32.

Python 3.8+, numpy and TensorRT 8.6+ only; TensorRT is imported when an Engine is made, not before. CUDA
is reached through the driver (cuda.py, ctypes), so no CUDA Python package is needed.

The package's modules, in the order a call meets them: compat (where the engine was built, and whether it can load
here), names, shapes, pool (the lanes), trt (TensorRT), staging, lane, engine; cuda (the driver). Their names are
imported on first use, so that `trtkit check` reaches compat on a host without numpy.
"""
from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compat import Host, IncompatibleEngine
    from .engine import Engine
    from .names import TensorSpec
    from .shapes import ProfileRange
    from .staging import pinned_empty

__all__ = ["Engine", "Host", "IncompatibleEngine", "ProfileRange", "TensorSpec", "pinned_empty"]

# Where the package's names live: each module's __all__ says which of its names are the package's.
_MODULES = ("compat", "names", "shapes", "pool", "trt", "staging", "lane", "engine")


def __getattr__(name: str) -> Any:
    """trtkit.runtime.X: a module of the package, or a name one of them lists (the engine imports them all)."""
    if name in _MODULES or name == "cuda":
        return importlib.import_module(f".{name}", __name__)
    importlib.import_module(".engine", __name__)
    for module in _MODULES:
        found = sys.modules[f"{__name__}.{module}"]
        if name in found.__all__:
            value = getattr(found, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
