"""Shapes: which optimization profile a call runs on, and the chunks a batch is split into (no GPU here)."""
from __future__ import annotations

import functools
import itertools
import operator
from dataclasses import dataclass
from typing import Sequence

__all__ = ["MIN_FILL_PART_BYTES", "ProfileRange", "volume", "batch_of", "batch_range", "select_profile", "stream_rows",
           "plan_chunks", "split_rows", "even_ranges", "CallPlan", "plan_call"]

# Parts of a copy for the fill threads are at least this big: an H100 host filled 8.2 MB of pinned memory in 0.89 ms
# on one thread, 0.44 ms on four (2 MB each), 0.59 on eight and 1.09 on sixteen (benchmarks/host_transfer.py 1024).
MIN_FILL_PART_BYTES = 2 << 20


@dataclass(frozen=True)
class ProfileRange:
    """One input's shapes in one optimization profile."""
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def volume(shape: Sequence[int]) -> int:
    """Elements of a shape, as a Python int (numpy's int64 product can overflow)."""
    return functools.reduce(operator.mul, shape, 1)


def batch_of(shapes: dict[str, tuple[int, ...]]) -> int:
    if not all(shapes.values()):
        raise ValueError(f"every input needs a batch dimension first; got shapes {shapes}")
    batches = {name: shape[0] for name, shape in shapes.items()}
    if len(set(batches.values())) != 1:
        raise ValueError(f"the inputs have different batch sizes: {batches}")
    return next(iter(batches.values()))


def batch_range(profile: dict[str, ProfileRange]) -> tuple[int, int]:
    """The batch sizes every input of the profile accepts."""
    return max(r.min[0] for r in profile.values()), min(r.max[0] for r in profile.values())


def _fits_apart_from_batch(rng: ProfileRange, shape: tuple[int, ...]) -> bool:
    return len(shape) == len(rng.min) and all(low <= d <= high for d, low, high in
                                              zip(shape[1:], rng.min[1:], rng.max[1:]))


def select_profile(profiles: Sequence[dict[str, ProfileRange]], shapes: dict[str, tuple[int, ...]]) -> int:
    """The profile with the narrowest batch range that takes these shapes, batch included (the first of equals):
    a profile for exactly this batch (build --exact-batches) has kernels chosen for it. Else, of those whose
    smallest batch it reaches, the one that takes it in the largest runs (the batch is then split)."""
    fitting = [i for i, profile in enumerate(profiles)
               if all(_fits_apart_from_batch(profile[name], shape) for name, shape in shapes.items())]
    if not fitting:
        ranges = "; ".join(f"profile {i}: " + ", ".join(f"{name} {list(r.min)} to {list(r.max)}"
                                                        for name, r in profile.items())
                           for i, profile in enumerate(profiles))
        raise ValueError(f"inputs of shapes {shapes} fit none of the engine's optimization profiles ({ranges}); "
                         "rebuild with --shapes that cover them")
    batch = batch_of(shapes)
    holding = [i for i in fitting if batch_range(profiles[i])[0] <= batch <= batch_range(profiles[i])[1]]
    if holding:
        return min(holding, key=lambda i: batch_range(profiles[i])[1] - batch_range(profiles[i])[0])
    reached = [i for i in fitting if batch_range(profiles[i])[0] <= batch]
    if not reached:
        raise ValueError(f"a batch of {batch} is under the smallest batch of every optimization profile that fits "
                         f"its shapes ({', '.join(str(batch_range(profiles[i])[0]) for i in fitting)}); rebuild "
                         "with --shapes whose batch range starts lower")
    return max(reached, key=lambda i: batch_range(profiles[i])[1])


def stream_rows(row_bytes: int, low: int, high: int, chunk_bytes: int) -> int:
    """Rows per streamed chunk: about chunk_bytes of input, within the batches the profile takes."""
    return max(1, low, min(high, chunk_bytes // max(row_bytes, 1)))


def plan_chunks(total: int, rows: int, low: int, high: int) -> list[tuple[int, int]]:
    """[(start, stop)]: runs of `rows` rows that cover `total`, each a batch the profile takes (`low` to `high`).
    As few sizes as can be: runs of `rows`, then what is left (shared with the run before it when it alone would be
    under `low`). Each change of size makes the stream wait and TensorRT set up the new shape: on an H100, runs of
    7692 and 7693 rows in turn spent 22 of the 53 ms of a batch of 100000 there. Where the rest cannot make a run
    of `low` (rows close to low), the rows are spread evenly over as many runs of `rows` as take `low` each, longer
    runs (up to `high`) where they must."""
    if total < 1:
        raise ValueError("predict() needs at least one row")
    runs = -(-total // rows)
    last = total - (runs - 1) * rows
    sizes = [rows] * (runs - 1) + [last]
    if last < low and runs > 1 and rows + last - low >= low:
        sizes[-2:] = [rows + last - low, low]
    elif last < low:
        runs = min(runs, total // low)
        if runs < 1 or -(-total // runs) > high:
            raise ValueError(f"the engine runs batches of {low} to {high} rows: {total} rows cannot be split "
                             "into such runs")
        return even_ranges(total, runs)
    bounds = [0, *itertools.accumulate(sizes)]
    return list(zip(bounds[:-1], bounds[1:]))


@functools.lru_cache(maxsize=256)  # pure, and asked again for every input of every call
def split_rows(rows: int, row_bytes: int, workers: int, min_part_bytes: int = MIN_FILL_PART_BYTES
               ) -> list[tuple[int, int]]:
    """[(start, stop)] of about equal parts for the fill threads; one part for a small copy."""
    return even_ranges(rows, max(1, min(workers, rows, rows * row_bytes // max(min_part_bytes, 1))))


def even_ranges(total: int, parts: int) -> list[tuple[int, int]]:
    bounds = [total * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass(frozen=True)
class CallPlan:
    """How one predict() call runs."""
    profile: int
    chunks: list[tuple[int, int]]   # row ranges, each one run of the engine
    buffer_rows: int                # rows the staging buffers are made for (a batch the profile takes)
    small: bool                     # one run from the small buffers (a CUDA graph); else streamed


def plan_call(profiles: Sequence[dict[str, ProfileRange]], shapes: dict[str, tuple[int, ...]], row_bytes: int,
              small_bytes: int, chunk_bytes: int) -> CallPlan:
    """row_bytes: input bytes per row, as the engine holds them. Small buffers are made for the largest small
    batch at once, so that growing batches do not replace them (and the graphs recorded on them) each time."""
    profile = select_profile(profiles, shapes)
    low, high = batch_range(profiles[profile])
    batch = batch_of(shapes)
    if low <= batch <= high and batch * row_bytes <= small_bytes:
        return CallPlan(profile, [(0, batch)], max(batch, min(high, small_bytes // max(row_bytes, 1))), small=True)
    rows = stream_rows(row_bytes, low, high, chunk_bytes)
    chunks = plan_chunks(batch, rows, low, high)
    return CallPlan(profile, chunks, max(rows, *(stop - start for start, stop in chunks)), small=False)
