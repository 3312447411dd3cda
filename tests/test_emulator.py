"""Self-tests of the SIMT emulator (csrc/simt/) on small kernels written for it (emulator_kernels.cu).

The kernels are built with the host compiler against the emulation header, exactly like the
cuda_emulated backend, and run on CPU tensors: warp shuffles and votes, a shared-memory transpose,
dynamic shared memory, grid sync, 16-bit conversions; and kernels with bugs the emulator must
expose (a missing __syncthreads, an out-of-bounds index, a shuffle naming an exited lane).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from fastrnn import _emulated

pytestmark = pytest.mark.emulated

TESTS = Path(__file__).resolve().parent
CSRC = TESTS.parent / "csrc"

# Torch headers first: the emulation header's macros (threadIdx, __shared__, ...) must not reach them.
WRAPPER = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "KERNELS"

namespace {
using at::Tensor;

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> warp_ops(const Tensor& x) {
  TORCH_CHECK(x.dtype() == at::kFloat && x.dim() == 1 && x.numel() % 64 == 0 && x.is_contiguous());
  const int64_t n = x.numel();
  Tensor scan = at::empty_like(x), total = at::empty_like(x), first = at::empty_like(x), next = at::empty_like(x);
  Tensor votes = at::zeros({n / 32, 3}, x.options().dtype(at::kInt));
  simt_test::warp_ops(x.const_data_ptr<float>(), n, scan.data_ptr<float>(), total.data_ptr<float>(),
                      first.data_ptr<float>(), next.data_ptr<float>(), votes.data_ptr<int>());
  return {scan, total, first, next, votes};
}

Tensor warp_sum(const Tensor& x) {
  Tensor out = at::zeros({1}, x.options());
  simt_test::warp_sum(x.const_data_ptr<float>(), x.numel(), out.data_ptr<float>());
  return out;
}

Tensor transpose(const Tensor& x, bool sync) {
  Tensor out = at::empty({x.size(1), x.size(0)}, x.options());
  simt_test::transpose(x.const_data_ptr<float>(), x.size(0), x.size(1), sync, out.data_ptr<float>());
  return out;
}

Tensor block_reverse(const Tensor& x, int64_t block, bool sync) {
  Tensor out = at::empty_like(x);
  simt_test::block_reverse(x.const_data_ptr<float>(), x.numel(), block, sync, out.data_ptr<float>());
  return out;
}

Tensor grid_rotate(const Tensor& x, int64_t shift, int64_t rounds, int64_t blocks, bool cooperative) {
  Tensor a = x.clone();
  simt_test::grid_rotate(a.data_ptr<float>(), a.numel(), shift, rounds, blocks, cooperative);
  return a;
}

std::tuple<Tensor, Tensor> round_trip(const Tensor& x) {
  Tensor h16 = at::empty_like(x), b16 = at::empty_like(x);
  simt_test::round_trip(x.const_data_ptr<float>(), x.numel(), h16.data_ptr<float>(), b16.data_ptr<float>());
  return {h16, b16};
}

Tensor off_by_one(const Tensor& x) {
  Tensor out = at::empty_like(x);
  simt_test::off_by_one(x.const_data_ptr<float>(), x.numel(), out.data_ptr<float>());
  return out;
}

Tensor divergent_barrier(const Tensor& x) {
  Tensor out = x.clone();
  simt_test::divergent_barrier(out.data_ptr<float>());
  return out;
}

Tensor early_exit_shuffle(const Tensor& x) {
  Tensor out = x.clone();
  simt_test::early_exit_shuffle(out.data_ptr<float>());
  return out;
}
}  // namespace

TORCH_LIBRARY(fastrnn_simt_test, m) {
  m.def("warp_ops", warp_ops);
  m.def("warp_sum", warp_sum);
  m.def("transpose", transpose);
  m.def("block_reverse", block_reverse);
  m.def("grid_rotate", grid_rotate);
  m.def("round_trip", round_trip);
  m.def("off_by_one", off_by_one);
  m.def("early_exit_shuffle", early_exit_shuffle);
  m.def("divergent_barrier", divergent_barrier);
}
"""


@pytest.fixture(scope="module")
def k():
    from torch.utils import cpp_extension

    kernels = TESTS / "emulator_kernels.cu"
    inputs = [kernels] + _emulated.headers()
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()[:16]
    build = _emulated.cache_dir() / "simt_test"
    build.mkdir(parents=True, exist_ok=True)
    wrapper = build / "simt_test.cpp"
    text = f"// sources digest {digest}\n" + WRAPPER.replace("KERNELS", str(kernels))
    if not wrapper.exists() or wrapper.read_text() != text:
        wrapper.write_text(text)
    cpp_extension.load(name="fastrnn_simt_test", sources=[str(wrapper)], build_directory=str(build),
                       extra_cflags=["-O1", "-DFASTRNN_SIMT_EMULATION"], extra_include_paths=[str(CSRC)],
                       is_python_module=False)
    return torch.ops.fastrnn_simt_test


def test_warp_shuffles_and_votes(k):
    torch.manual_seed(0)
    x = torch.randn(128)
    x[32:64] = x[32:64].abs() + 0.1  # a warp where every lane votes yes
    x[64:96] = -x[64:96].abs() - 0.1  # and one where none does
    scan, total, first, next_, votes = k.warp_ops(x)
    w = x.view(-1, 32)
    torch.testing.assert_close(scan, w.cumsum(1).flatten())
    torch.testing.assert_close(total, w.sum(1, keepdim=True).expand(-1, 32).flatten())
    torch.testing.assert_close(first, w[:, :1].expand(-1, 32).flatten())
    # shfl_down past the last lane returns the lane's own value
    torch.testing.assert_close(next_, torch.cat([w[:, 1:], w[:, -1:]], 1).flatten())
    bits = (w > 0).long() << torch.arange(32)
    ballot = bits.sum(1).to(torch.int64) & 0xFFFFFFFF
    assert votes[:, 0].long().tolist() == [b - (1 << 32) if b >= 1 << 31 else b for b in ballot.tolist()]
    assert votes[:, 1].tolist() == (w > 0).all(1).int().tolist() == [0, 1, 0, 0]
    assert votes[:, 2].tolist() == (w > 0).any(1).int().tolist()
    assert votes[2, 2] == 0


def test_warp_sum_reduction(k):
    x = torch.randn(300)  # a partial last block: lanes past n contribute 0
    torch.testing.assert_close(k.warp_sum(x), x.sum(0, keepdim=True))


@pytest.mark.parametrize("shape", [(8, 8), (13, 21), (1, 17)])
def test_shared_memory_transpose(k, shape):
    x = torch.randn(shape)
    assert torch.equal(k.transpose(x, True), x.t())


def test_missing_syncthreads_gives_a_wrong_answer(k):
    # Each thread runs until it blocks: without the barrier, threads read tile entries that later
    # threads of the block have not written yet (stale data from earlier blocks and launches).
    x = torch.randn(16, 16)
    assert not torch.equal(k.transpose(x, False), x.t())
    y = torch.randn(256)
    assert torch.equal(k.block_reverse(y, 64, True), y.view(4, 64).flip(1).flatten())
    # Dynamic shared memory starts as 0xFF bytes (NaN): the unwritten half reads as NaN.
    bad = k.block_reverse(y, 64, False).view(4, 64)
    assert bad[:, :32].isnan().all()
    assert torch.equal(bad[:, 32:], y.view(4, 64).flip(1)[:, 32:])


def test_grid_sync(k):
    n, shift, rounds = 100, 37, 3
    x = torch.arange(n, dtype=torch.float32)
    out = k.grid_rotate(x, shift, rounds, 4, True)
    assert torch.equal(out, x.roll(-shift * rounds) + rounds)


def test_grid_sync_needs_a_cooperative_launch(k):
    with pytest.raises(RuntimeError, match="cooperative launch"):
        k.grid_rotate(torch.zeros(64), 1, 1, 2, False)


def test_out_of_bounds_index_raises(k):
    x = torch.randn(10)
    with pytest.raises(RuntimeError, match=r"out-of-bounds access: element 10 of an allocation of 10 elements"):
        k.off_by_one(x)
    # The failed launch left nothing behind: the next one runs normally.
    torch.testing.assert_close(k.warp_sum(x), x.sum(0, keepdim=True))


def test_shuffle_with_an_exited_lane_raises(k):
    with pytest.raises(RuntimeError, match="lane 0, which has exited"):
        k.early_exit_shuffle(torch.zeros(32))


def test_divergent_barrier_raises(k):
    with pytest.raises(RuntimeError, match="divergent barrier"):
        k.divergent_barrier(torch.zeros(32))


def test_half_and_bfloat16_conversions_match_torch(k):
    torch.manual_seed(0)
    specials = torch.tensor([0.0, -0.0, 1.0, 65504.0, 65519.0, 65520.0, 1e6, -1e6, 6e-8, 3e-8, 2.9e-8, 1e-7,
                             6.1e-5, 1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11, float("inf"), float("-inf"), 1e-40, 3e38])
    x = torch.cat([specials, torch.randn(2000) * 10.0 ** torch.randint(-9, 6, (2000,)).float()])
    half, bf16 = k.round_trip(x)
    assert torch.equal(half, x.half().float())
    assert torch.equal(bf16, x.bfloat16().float())
    nan_half, nan_bf16 = k.round_trip(torch.tensor([float("nan")]))
    assert nan_half.isnan().all() and nan_bf16.isnan().all()


def test_launches_from_several_threads(k):
    # Launches are serialized; each OS thread has its own fibers, stacks and static shared memory.
    from concurrent.futures import ThreadPoolExecutor

    xs = [torch.randn(16, 16) for _ in range(8)]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda x: k.transpose(x, True), xs))
    for x, out in zip(xs, outs):
        assert torch.equal(out, x.t())
