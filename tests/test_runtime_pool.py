"""trtkit.runtime.pool: the graph cache and the lane pool."""
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from trtkit.runtime import GraphCache, LanePool


def test_graph_cache_evicts_the_least_recently_used_and_frees_it():
    released = []
    cache = GraphCache(2, released.append)
    cache.put("a", "graph a")
    cache.put("b", "graph b")
    assert cache.get("a") == "graph a"       # a is now the most recent
    cache.put("c", "graph c")
    assert released == ["graph b"] and len(cache) == 2 and cache.get("b") is None
    cache.put("c", "graph c2")               # a new graph for a key frees the old one
    assert released == ["graph b", "graph c"]
    cache.clear()
    assert sorted(released[2:]) == ["graph a", "graph c2"] and len(cache) == 0


def test_lane_pool_makes_at_most_its_size_and_reuses_lanes():
    made, busy, most = [], [0], [0]
    lock = threading.Lock()
    pool = LanePool(lambda key: made.append(object()) or made[-1], 2)

    def call(_):
        with pool.lane():
            with lock:
                busy[0] += 1
                most[0] = max(most[0], busy[0])
            time.sleep(0.01)
            with lock:
                busy[0] -= 1

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(call, range(32)))
    assert len(made) == 2 and most[0] == 2


def test_lane_pool_makes_at_most_per_key_lanes_of_a_key_and_runs_at_most_size():
    """One lane a key (a profile, as TensorRT allows one context a profile); at most 2 calls at once in all."""
    made, running, most, lock = [], {}, {"all": 0}, threading.Lock()
    pool = LanePool(lambda key: made.append(key) or (key, len(made)), 2, per_key=1)

    def call(i):
        key = i % 3
        with pool.lane(key) as lane:
            assert lane[0] == key
            with lock:
                running[key] = running.get(key, 0) + 1
                assert running[key] == 1, "two calls on one key's lane"
                most["all"] = max(most["all"], sum(running.values()))
            time.sleep(0.005)
            with lock:
                running[key] -= 1

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(call, range(48)))
    assert sorted(made) == [0, 1, 2] and most["all"] == 2


def test_lane_pool_gives_the_slot_back_when_making_a_lane_fails():
    attempts = itertools.count()

    def factory(key):
        if next(attempts) == 0:
            raise MemoryError("out of device memory")
        return "lane"

    pool = LanePool(factory, 1)
    with pytest.raises(MemoryError):
        with pool.lane():
            pass
    with pool.lane() as lane:
        assert lane == "lane"


def test_lane_pool_close_waits_for_running_calls_then_refuses():
    pool, destroyed, entered, leave = LanePool(lambda key: "lane", 2), [], threading.Event(), threading.Event()

    def running_call():
        with pool.lane():
            entered.set()
            leave.wait(5)

    worker = threading.Thread(target=running_call)
    worker.start()
    entered.wait(5)
    closer = threading.Thread(target=pool.close, args=(destroyed.append,))
    closer.start()
    time.sleep(0.05)
    assert destroyed == []                   # still running
    leave.set()
    worker.join(5)
    closer.join(5)
    assert destroyed == ["lane"]
    with pytest.raises(RuntimeError, match="the Engine is closed"):
        with pool.lane():
            pass
