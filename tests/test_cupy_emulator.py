"""The CPU CUDA emulator that the cupy tests run on where there is no GPU, checked itself.

These run in CI's emulator step (``PYTHONPATH=tests/cuda_emulator pytest -k cupy``) and
skip elsewhere. They show that the emulator behaves as a GPU would where fastnn's kernels
depend on it (barriers, shared memory, grid-stride loops) and that it refuses what CuPy
would refuse or what would corrupt memory on a GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

try:
    import cupy
except ImportError:
    cupy = None
if cupy is None or not cupy.__version__.endswith("cpu-emulator"):
    pytest.skip(
        "tests of the CUDA emulator: run with PYTHONPATH=tests/cuda_emulator",
        allow_module_level=True,
    )

SOURCE = r"""
// Block sums by a shared-memory tree: log2(blockDim.x) barriers.
template <typename T>
__global__ void block_sums(const T* x, T* out, long long n) {
    __shared__ T part[256];
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    part[threadIdx.x] = i < n ? x[i] : T(0);
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

// x[k] *= a over a grid-stride loop; one thread per element of a 2-D block too.
template <typename T>
__global__ void scale(T* x, long long n, T a) {
    long long threads = (long long)blockDim.x * blockDim.y * gridDim.x;
    long long first = blockIdx.x * (long long)blockDim.x * blockDim.y
                      + threadIdx.y * blockDim.x + threadIdx.x;
    for (long long k = first; k < n; k += threads) x[k] *= a;
}
"""


@pytest.fixture(scope="module")
def module():
    return cupy.RawModule(
        code=SOURCE, name_expressions=["block_sums<float>", "scale<double>", "scale<float>"]
    )


@pytest.mark.parametrize("n", [1, 255, 256, 1000])
def test_barriers_and_shared_memory_reduce_a_block(module, n):
    x = np.random.default_rng(n).random(n, dtype=np.float32)
    blocks = -(-n // 256)
    out = cupy.zeros(blocks, cupy.float32)
    module.get_function("block_sums<float>")((blocks,), (256,), (cupy.asarray(x), out, np.int64(n)))
    expected = [x[i : i + 256].astype(np.float64).sum() for i in range(0, n, 256)]
    np.testing.assert_allclose(out.get(), expected, rtol=1e-5)


def test_grid_stride_loops_cover_every_element_once(module):
    x = cupy.asarray(np.arange(10_000, dtype=np.float64))
    module.get_function("scale<double>")((7,), (32, 4), (x, np.int64(x.size), np.float64(3)))
    np.testing.assert_array_equal(x.get(), 3 * np.arange(10_000))


@pytest.mark.parametrize(
    ("n", "a", "match"),
    [
        (np.int32(4), np.float32(2), r"argument 1 \(i8\): the parameter is i8 but .* i4"),
        (np.int64(4), 2.0, r"argument 2 \(f4\): the parameter is f4 but .* f8 \(float"),
        (np.int64(4), np.float64(2), r"argument 2 \(f4\): the parameter is f4 but .* f8"),
        (np.int64(4), "2", r"Unsupported type <class 'str'>"),
    ],
)
def test_scalar_arguments_must_match_the_parameter_types(module, n, a, match):
    kernel = module.get_function("scale<float>")
    with pytest.raises(TypeError, match=match):
        kernel((1,), (4,), (cupy.zeros(4, cupy.float32), n, a))


def test_a_python_int_passes_as_a_64_bit_integer(module):
    x = cupy.ones(4, cupy.float32)
    module.get_function("scale<float>")((1,), (4,), (x, 4, np.float32(2)))
    np.testing.assert_array_equal(x.get(), [2, 2, 2, 2])


def test_pointer_arguments_must_be_contiguous_device_arrays_of_the_element_type(module):
    kernel = module.get_function("scale<float>")
    with pytest.raises(TypeError, match="reads f4, got a float64 array"):
        kernel((1,), (4,), (cupy.zeros(4), np.int64(4), np.float32(2)))
    with pytest.raises(ValueError, match="non-contiguous"):
        kernel((1,), (4,), (cupy.zeros((4, 4), cupy.float32).T, np.int64(4), np.float32(2)))
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel((1,), (4,), (np.zeros(4, np.float32), np.int64(4), np.float32(2)))
    with pytest.raises(TypeError, match="the parameter is a value, got an array"):
        kernel((1,), (4,), (cupy.zeros(4, cupy.float32), cupy.zeros(1), np.float32(2)))


def test_launch_configuration_limits(module):
    kernel = module.get_function("scale<float>")
    args = (cupy.zeros(4, cupy.float32), np.int64(4), np.float32(2))
    with pytest.raises(ValueError, match="more than 1024 threads"):
        kernel((1,), (64, 32), args)
    with pytest.raises(ValueError, match="invalid grid"):
        kernel((1, 70_000), (32,), args)


def test_device_arrays_do_not_mix_with_numpy_arrays():
    d = cupy.zeros(3)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(d)
    with pytest.raises(TypeError, match="Unsupported type"):
        d + np.ones(3)
    with pytest.raises(TypeError, match="Unsupported type"):
        np.ones(3) + d
    with pytest.raises(TypeError, match="Unsupported type"):
        cupy.matmul(d, np.ones(3))
    assert isinstance(d + 1, cupy.ndarray) and isinstance(d.sum(), cupy.ndarray)


def test_elementwise_kernels_require_one_type_per_placeholder():
    kernel = cupy.ElementwiseKernel("T x, T y", "T z", "z = x * y", "product")
    x = cupy.asarray(np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(kernel(x, x).get(), np.arange(4) ** 2)
    np.testing.assert_array_equal(kernel(x, np.float32(2)).get(), 2 * np.arange(4))
    with pytest.raises(TypeError, match="Type is mismatched"):
        kernel(x, cupy.asarray(np.arange(4)))


def test_the_memory_pool_counts_live_arrays():
    pool = cupy.get_default_memory_pool()
    before = pool.used_bytes()
    a = cupy.zeros(1000, cupy.float64)
    assert pool.used_bytes() - before == 8000
    del a
    assert pool.used_bytes() == before


OUT_OF_BOUNDS = r"""
import numpy as np, cupy
module = cupy.RawModule(
    code="template <typename T> __global__ void past_end(T* x, long long n) { x[n] = T(1); }",
    name_expressions=["past_end<float>"],
)
module.get_function("past_end<float>")((1,), (1,), (cupy.ALLOCATE(5, cupy.float32), np.int64(5)))
"""


# zeros: an exact-size NumPy allocation; empty: a 512-byte block from the emulator's pool,
# whose slack past the array is poisoned
@pytest.mark.parametrize(
    ("allocate", "report"), [("zeros", "heap-buffer-overflow"), ("empty", "use-after-poison")]
)
def test_out_of_bounds_writes_stop_the_run_when_sanitized(allocate, report):
    if not os.environ.get("FASTNN_EMU_SANITIZE"):
        pytest.skip("kernels are bounds-checked with FASTNN_EMU_SANITIZE=1 and libasan (CI)")
    script = OUT_OF_BOUNDS.replace("ALLOCATE", allocate)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode != 0
    assert report in done.stderr, done.stderr[-2000:]


def test_the_pool_hands_a_freed_block_to_the_next_array_of_its_bin():
    a = cupy.empty(10, cupy.float32)
    address = a.data.ptr
    del a
    b = cupy.empty(100, cupy.float32)  # 400 bytes: the same 512-byte bin
    assert b.data.ptr == address


def test_new_arrays_hold_values_that_show_when_read_before_written():
    assert np.isnan(cupy.empty(3).get()).all()
    assert (cupy.empty(2, cupy.int64).get() == np.iinfo(np.int64).max).all()
