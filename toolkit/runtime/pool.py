"""Bounded caches and the lane pool (no GPU here)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["GraphCache", "LanePool"]


class GraphCache:
    """Values (CUDA graphs) by key (input shapes), least recently used evicted first; release() frees a value."""

    def __init__(self, capacity: int, release: Callable[[Any], None]):
        self.capacity = capacity
        self._release = release
        self._entries: OrderedDict = OrderedDict()

    def get(self, key: Any) -> Any:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Any, entry: Any) -> None:
        if key in self._entries:
            self._release(self._entries.pop(key))
        self._entries[key] = entry
        while len(self._entries) > self.capacity:
            self._release(self._entries.popitem(last=False)[1])

    def clear(self) -> None:
        while self._entries:
            self._release(self._entries.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._entries)


class LanePool:
    """Lanes by key (the optimization profile), made on demand by factory(key): at most per_key of one key, and
    at most `size` in use at once. A caller waits while its key has no free lane and may have no more, or while
    `size` lanes are in use."""

    def __init__(self, factory: Callable[[Any], Any], size: int, per_key: int | None = None):
        if size < 1 or (per_key is not None and per_key < 1):
            raise ValueError("max_lanes must be at least 1")
        self._factory = factory
        self._size = size
        self._per_key = size if per_key is None else per_key
        self._free: dict[Any, list] = {}
        self._made: dict[Any, int] = {}
        self._busy = 0
        self._closed = False
        self._changed = threading.Condition()

    @contextmanager
    def lane(self, key: Any = 0) -> Iterator[Any]:
        lane = self._acquire(key)
        try:
            yield lane
        finally:
            with self._changed:
                self._free.setdefault(key, []).append(lane)
                self._busy -= 1
                self._changed.notify_all()  # waiters may be for other keys

    def _acquire(self, key: Any) -> Any:
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("the Engine is closed")
                if self._busy < self._size:
                    if self._free.get(key):
                        self._busy += 1
                        return self._free[key].pop()
                    if self._made.get(key, 0) < self._per_key:
                        self._made[key] = self._made.get(key, 0) + 1
                        self._busy += 1
                        break
                self._changed.wait()
        try:
            return self._factory(key)
        except BaseException:
            with self._changed:
                self._made[key] -= 1
                self._busy -= 1
                self._changed.notify_all()
            raise

    def close(self, destroy: Callable[[Any], None]) -> None:
        """Refuse new calls, wait for those running, then destroy every lane."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            while self._busy:
                self._changed.wait()
            lanes = [lane for free in self._free.values() for lane in free]
            self._free, self._made = {}, {}
        failures = []
        for lane in lanes:
            try:
                destroy(lane)
            except BaseException as e:  # the other lanes are still freed
                failures.append(e)
        if failures:
            raise failures[0]
