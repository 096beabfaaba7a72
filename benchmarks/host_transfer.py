"""How fast can 845 MB of float32 (the origin LSTM's batch 100000) get from host memory to the GPU?

    python3 benchmarks/host_transfer.py [BATCH]   (a GPU host with PyTorch; prints one JSON object)

The evidence behind trtkit.runtime's streaming design (docs/runtime.md): the copy from pageable and from
pinned memory; filling pinned memory from an ordinary array on 1 to 16 threads; registering the array in
place (cudaHostRegister) whole, and chunk by chunk while copying; and a ring of three pinned chunks filled
by threads while the previous ones copy, the runtime's scheme, by chunk size and threads. Medians of wall
milliseconds. PyTorch is only the CUDA binding here: no model runs. A batch of at most MID_BATCH rows (8.6 MB at
1024) gets the copies, the fills, fill-then-copy against a pageable copy in turns, and rings of 1-4 MB chunks
only: how a mid-sized call should stage its input.
"""
import functools
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

SAMPLE = (11, 192)
MID_BATCH = 4096
THREADS = (1, 2, 4, 8, 12, 16)
RING_SLOTS = 3


def median_ms(call, repeat=5):
    call()
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def even_parts(total, parts):
    return [(total * i // parts, total * (i + 1) // parts) for i in range(parts)]


def parallel_copy(pool, threads, target, source):
    list(pool.map(lambda part: np.copyto(target[part[0]:part[1]], source[part[0]:part[1]]),
                  even_parts(len(source), threads)))


def staged_copy(pool, threads, pinned, flat, device):
    """Fill the pinned buffer, then copy it to the GPU: what trtkit.runtime does for a graph-replayed batch (one
    thread: on the calling thread, as the runtime fills under 2 MB)."""
    if threads == 1:
        np.copyto(pinned.numpy(), flat)
    else:
        parallel_copy(pool, threads, pinned.numpy(), flat)
    device.copy_(pinned, non_blocking=True)


def register_whole(cudart, device, shape, seed):
    """cudaHostRegister of a fresh array, the copy from it, cudaHostUnregister: ms of each."""
    array = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).reshape(-1)
    start = time.perf_counter()
    code = cudart.cudaHostRegister(array.ctypes.data, array.nbytes, 0)
    registered = time.perf_counter()
    device.copy_(torch.from_numpy(array), non_blocking=True)
    torch.cuda.synchronize()
    copied = time.perf_counter()
    cudart.cudaHostUnregister(array.ctypes.data)
    done = time.perf_counter()
    return {"error": int(code), "register_ms": round((registered - start) * 1000, 2),
            "copy_ms": round((copied - registered) * 1000, 2), "unregister_ms": round((done - copied) * 1000, 2)}


def register_chunks(cudart, device, stream, flat, chunk_mb):
    """Register a chunk, queue its copy, unregister each chunk once its copy is done."""
    step = (chunk_mb << 20) // flat.itemsize
    pending = []
    with torch.cuda.stream(stream):
        for low in range(0, flat.size, step):
            chunk = flat[low:low + step]
            cudart.cudaHostRegister(chunk.ctypes.data, chunk.nbytes, 0)
            device[low:low + len(chunk)].copy_(torch.from_numpy(chunk), non_blocking=True)
            event = torch.cuda.Event()
            event.record(stream)
            pending.append((event, chunk.ctypes.data))
    for event, address in pending:
        event.synchronize()
        cudart.cudaHostUnregister(address)


def ring(device, stream, pool, threads, flat, chunk_mb, repeat=3):
    """Three pinned chunks: threads fill one while the others copy (trtkit.runtime's streaming, without compute)."""
    step = int(chunk_mb * (1 << 20)) // flat.itemsize
    slots = [torch.empty(step, dtype=torch.float32).pin_memory() for _ in range(RING_SLOTS)]
    copied = [None] * RING_SLOTS

    def run():
        for index, low in enumerate(range(0, flat.size, step)):
            slot, rows = index % RING_SLOTS, min(step, flat.size - low)
            if copied[slot] is not None:
                copied[slot].synchronize()
            parallel_copy(pool, threads, slots[slot].numpy()[:rows], flat[low:low + rows])
            with torch.cuda.stream(stream):
                device[low:low + rows].copy_(slots[slot][:rows], non_blocking=True)
                copied[slot] = torch.cuda.Event()
                copied[slot].record(stream)
        stream.synchronize()
    return median_ms(run, repeat=repeat)


def main(batch):
    cudart = torch.cuda.cudart()
    shape = (batch,) + SAMPLE
    mid = batch <= MID_BATCH
    repeat = 200 if mid else 5
    flat = np.random.default_rng(0).standard_normal(shape, dtype=np.float32).reshape(-1)
    device = torch.empty(flat.size, dtype=torch.float32, device="cuda")
    stream = torch.cuda.Stream()
    pinned = torch.empty(flat.size, dtype=torch.float32).pin_memory()
    result = {"gpu": torch.cuda.get_device_name(), "cpus": os.cpu_count(), "mb": round(flat.nbytes / 2**20, 1),
              "pageable_copy_ms": median_ms(lambda: device.copy_(torch.from_numpy(flat)), repeat),
              "pinned_copy_ms": median_ms(lambda: device.copy_(pinned, non_blocking=True), repeat)}
    pools = {threads: ThreadPoolExecutor(threads) for threads in THREADS}
    for threads, pool in pools.items():
        result["fill_pinned_%d_threads_ms" % threads] = median_ms(
            functools.partial(parallel_copy, pool, threads, pinned.numpy(), flat), repeat)
    if mid:
        # A small call's two ways from an ordinary array: trtkit.runtime's (fill pinned, then copy from there)
        # against the driver's own staging of a pageable copy; in turns, so that drift hits both.
        for round_ in range(3):
            result["pageable_copy_ms_%d" % round_] = median_ms(lambda: device.copy_(torch.from_numpy(flat)), repeat)
            for threads in (1, 4):
                result["staged_copy_%d_threads_ms_%d" % (threads, round_)] = median_ms(functools.partial(
                    staged_copy, pools[threads], threads, pinned, flat, device), repeat)
        for chunk_mb in (1, 2, 4):
            for threads in (1, 4):
                result["ring_%dmb_%d_threads_ms" % (chunk_mb, threads)] = ring(
                    device, stream, pools[threads], threads, flat, chunk_mb, repeat)
        print(json.dumps(result, indent=1))
        return
    result["register_whole"] = [register_whole(cudart, device, shape, seed) for seed in range(3)]
    for chunk_mb in (16, 64, 256):
        result["register_chunks_%dmb_ms" % chunk_mb] = median_ms(
            functools.partial(register_chunks, cudart, device, stream, flat, chunk_mb), repeat=3)
    for chunk_mb in (8, 32, 64):
        for threads in (8, 16):
            result["ring_%dmb_%d_threads_ms" % (chunk_mb, threads)] = ring(
                device, stream, pools[threads], threads, flat, chunk_mb)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100000)
