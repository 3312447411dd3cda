"""The cpu backend's sequence buffers (csrc/cpu/seq_cache.cpp): large ones are kept when freed and handed
out again, so a repeated call does not page-fault them afresh; they behave as any tensor's storage."""
from __future__ import annotations

import pytest
import torch

import fastrnn
from fastrnn import _ext

resource = pytest.importorskip("resource")
pytestmark = pytest.mark.skipif(not _ext.has_cpu(), reason="fastrnn._C is not built")

T, B, H = 2048, 64, 32  # the output: 16 MB


def _forward(xw, w_hh, h0):
    return torch.ops.fastrnn.rnn_relu_forward(xw, w_hh, h0, None, False)


def test_repeated_call_reuses_its_buffers():
    g = torch.Generator().manual_seed(0)
    xw, w_hh, h0 = torch.randn(T, B, H, generator=g), torch.randn(H, H, generator=g) * 0.1, torch.zeros(B, H)
    want = _forward(xw, w_hh, h0)[0].clone()
    _forward(xw, w_hh, h0)  # its buffers freed at once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    got = _forward(xw, w_hh, h0)[0]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    pages = got.nbytes // 4096
    assert faults < pages // 4, f"{faults} page faults for an output of {pages} pages"
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_repeated_layer_reuses_its_projection(monkeypatch):
    """The layer op's input projection xw (16 MB here) on MKL (as on Intel CPUs; here oneDNN disabled) comes
    from the cache: at::mm's fresh output had page-faulted afresh at every call."""
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    g = torch.Generator().manual_seed(4)
    x, w_ih = torch.randn(T, B, 8, generator=g), torch.randn(H, 8, generator=g)
    w_hh, h0 = torch.randn(H, H, generator=g) * 0.1, torch.zeros(B, H)

    def layer():
        return torch.ops.fastrnn.layer("rnn_relu", x, w_ih, w_hh, None, None, None, h0, None, None, False)[0]

    want = layer().clone()
    layer()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    got = layer()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    pages = 2 * got.nbytes // 4096  # xw and the output
    assert faults < pages // 8, f"{faults} page faults for an xw and an output of {pages} pages"
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_buffer_resizes_and_frees_like_any_storage():
    g = torch.Generator().manual_seed(1)
    xw, w_hh, h0 = torch.randn(T, B, H, generator=g), torch.randn(H, H, generator=g) * 0.1, torch.zeros(B, H)
    out = _forward(xw, w_hh, h0)[0]
    want = out.clone()
    out.resize_(2 * T, B, H)  # a larger storage from the same allocator, the contents copied over
    torch.testing.assert_close(out[:T], want, rtol=0, atol=0)
    out[T:] = 1
    assert out[T:].eq(1).all()
    del out


def _child_forward(queue):
    torch.set_num_threads(1)  # OpenMP's threads do not survive fork
    g = torch.Generator().manual_seed(2)
    xw, w_hh, h0 = torch.randn(T, B, H, generator=g), torch.randn(H, H, generator=g) * 0.1, torch.zeros(B, H)
    queue.put(_forward(xw, w_hh, h0)[0].double().sum().item())


def test_forked_child_allocates_and_frees():
    """A forked process (a DataLoader worker) gets the cache as it was, with a lock it can take."""
    mp = pytest.importorskip("multiprocessing").get_context("fork")
    g = torch.Generator().manual_seed(2)
    xw, w_hh, h0 = torch.randn(T, B, H, generator=g), torch.randn(H, H, generator=g) * 0.1, torch.zeros(B, H)
    want = _forward(xw, w_hh, h0)[0].double().sum().item()  # leaves blocks in the cache the child inherits
    queue = mp.Queue()
    child = mp.Process(target=_child_forward, args=(queue,), daemon=True)
    child.start()
    got = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got == pytest.approx(want, rel=1e-12)  # the outputs are equal; the sums run on 1 or 2 threads


def test_empty_cache_frees_what_is_kept():
    """fastrnn.empty_cache() frees the kept blocks, like torch.cuda.empty_cache(); a buffer in use stays."""
    g = torch.Generator().manual_seed(3)
    xw, w_hh, h0 = torch.randn(T, B, H, generator=g), torch.randn(H, H, generator=g) * 0.1, torch.zeros(B, H)
    fastrnn.empty_cache()  # what earlier tests left, so what follows counts this test's blocks alone
    held = _forward(xw, w_hh, h0)[0]
    want = held.clone()
    _forward(xw, w_hh, h0)  # its output's block is kept when freed
    assert fastrnn.cached_bytes() >= held.nbytes
    assert fastrnn.empty_cache() >= held.nbytes
    assert fastrnn.cached_bytes() == 0
    torch.testing.assert_close(held, want, rtol=0, atol=0)
    del held  # freed after empty_cache: kept again
    assert fastrnn.cached_bytes() >= want.nbytes
    assert fastrnn.empty_cache() >= want.nbytes and fastrnn.empty_cache() == 0
