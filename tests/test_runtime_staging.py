"""trtkit.runtime.staging: copies into and views of pinned buffers, and pinned_empty's memory."""
import ctypes
import gc
import weakref

import numpy as np
import pytest
from runtime_sim import F16, F32

from trtkit import runtime


@pytest.mark.parametrize("source, target_dtype", [
    (np.arange(24, dtype=np.float32).reshape(4, 6), F32),            # memmove
    (np.arange(24, dtype=np.float64).reshape(4, 6), F32),            # cast
    (np.arange(48, dtype=np.float32).reshape(4, 12)[:, ::2], F32),   # strided source
    (np.arange(24, dtype=np.float32).reshape(4, 6), F16),            # float32 to the engine's float16
])
def test_copy_rows(source, target_dtype):
    target = np.zeros(source.shape, target_dtype)
    runtime.copy_rows(target, source)
    np.testing.assert_array_equal(target, source.astype(target_dtype))


def test_host_view_writes_into_the_buffer():
    buffer = (ctypes.c_byte * 64)()
    view = runtime.host_view(buffer, F16, (2, 3))
    view[:] = [[1, 2, 3], [4, 5, 6]]
    assert np.frombuffer(bytes(buffer)[:12], np.float16).tolist() == [1, 2, 3, 4, 5, 6]


def test_pinned_empty_is_freed_with_its_last_view(fake_cuda):
    freed = []
    x = runtime.pinned_empty((4, 3), np.float16)
    assert x.shape == (4, 3) and x.dtype == F16 and fake_cuda.is_page_locked(x.ctypes.data, x.nbytes)
    weakref.finalize(x.base, freed.append, True)
    view = x[1:]
    del x
    gc.collect()
    assert not freed
    del view
    gc.collect()
    assert freed == [True]
