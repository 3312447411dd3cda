"""The cpu backend's own ops, which the Python LayerFunction calls where torch.compile traces the layer
(fastrnn/autograd.py): fastrnn::matmul (the layer's one-off products) and fastrnn::lstm_layer_forward (the
LSTM forward from x, its input projection in the steps' GEMMs where that pays). Each against torch in
float64 and through opcheck, and their argument checks."""
from __future__ import annotations

import pytest
import torch

from fastrnn import _ext, reference
from tolerance import assert_close_rule

pytestmark = pytest.mark.skipif(not _ext.has_cpu(), reason="fastrnn._C is not built")


def _rand(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


# M=1: the panel GEMM for one row, whose bias, expanded, would be contiguous (and written over if not copied);
# M=300, K=N=128 (9.8 MFLOP): oneDNN where it beats MKL; M=40: the panel GEMM; float64 and bfloat16: at::mm.
@pytest.mark.parametrize("M,dtype", [(1, torch.float32), (40, torch.float32), (300, torch.float32),
                                     (40, torch.float64), (40, torch.bfloat16)])
@pytest.mark.parametrize("layout", ["plain", "a_transposed", "b_transposed"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_matmul(M, dtype, layout, with_bias):
    K, N = 128, 128
    a = _rand(K, M).t() if layout == "a_transposed" else _rand(M, K)
    a = (a * K ** -0.5).to(dtype)  # products of O(1), as the layer's
    b = _rand(N, K, dtype=dtype, seed=1).t() if layout == "b_transposed" else _rand(K, N, dtype=dtype, seed=1)
    bias = _rand(N, dtype=dtype, seed=2) if with_bias else None
    kept = None if bias is None else bias.clone()
    got = torch.ops.fastrnn.matmul(a, b, bias)
    want = a.double() @ b.double() + (0 if bias is None else bias.double())
    assert got.dtype == dtype and got.shape == (M, N)
    same_dtype = torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)
    assert_close_rule(got, want, same_dtype)
    if bias is not None:
        assert torch.equal(bias, kept) and got.data_ptr() != bias.data_ptr()
    torch.library.opcheck(torch.ops.fastrnn.matmul.default, (a, b, bias))


@pytest.mark.parametrize("args,message", [
    ((torch.ones(2, 3), torch.ones(4, 5)), "expected a \\[M, K\\] and b \\[K, N\\]"),
    ((torch.ones(2, 3, 1), torch.ones(3, 5)), "expected a \\[M, K\\]"),
    ((torch.ones(2, 3), torch.ones(3, 5, dtype=torch.float64)), "one dtype"),
    ((torch.ones(2, 3), torch.ones(3, 5), torch.ones(4)), "bias must be \\[N\\] = \\[5\\]"),
])
def test_matmul_bad_arguments(args, message):
    with pytest.raises(RuntimeError, match=message):
        torch.ops.fastrnn.matmul(*args)


# B=8 with I=H=16: its input projection runs in the steps' GEMMs (FASTRNN_CPU_FUSE_INPUT=1 forces it, 0 keeps
# it out); B=1: the projection beside the time loop on a second thread; with a projection: one GEMM.
@pytest.mark.parametrize("B,proj,packed", [(8, None, False), (8, None, True), (1, None, False), (3, 5, True)])
@pytest.mark.parametrize("fuse", ["0", "1"])
def test_lstm_layer_forward(B, proj, packed, fuse, monkeypatch):
    monkeypatch.setenv("FASTRNN_CPU_FUSE_INPUT", fuse)
    T, I, H = 6, 16, 16
    P = proj or H
    batch_sizes = torch.tensor([B] * 3 + [max(1, B // 2)] * 3) if packed else None
    x = _rand(int(batch_sizes.sum()), I) if packed else _rand(T, B, I)
    w_ih, w_hh, bias = _rand(4 * H, I, seed=1) * 0.3, _rand(4 * H, P, seed=2) * 0.3, _rand(4 * H, seed=3)
    w_hr = _rand(P, H, seed=4) * 0.3 if proj else None
    h0, c0 = _rand(B, P, seed=5), _rand(B, H, seed=6)
    args = (x, w_ih, w_hh, w_hr, h0, c0, batch_sizes, False)
    got = torch.ops.fastrnn.lstm_layer_forward(*args, True, bias)
    d = lambda t: None if t is None or not t.is_floating_point() else t.double()  # noqa: E731
    xw = torch.nn.functional.linear(x.double(), w_ih.double(), bias.double())
    want = reference.lstm_forward(xw, d(w_hh), d(w_hr), d(h0), d(c0), batch_sizes, False)
    for name, a, b in zip(["output", "h_n", "c_n", "gates", "cells"], got, want, strict=True):
        torch.testing.assert_close(a, b.float(), msg=lambda m: f"{name}: {m}")
    lean = torch.ops.fastrnn.lstm_layer_forward(*args, False, bias)
    for a, b in zip(lean[:3], got[:3], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(t.numel() == 0 for t in lean[3:])
    torch.library.opcheck(torch.ops.fastrnn.lstm_layer_forward.default, (*args, True, bias))


def test_lstm_layer_forward_bad_w_ih():
    x, w_hh, h0, c0 = torch.ones(3, 2, 5), torch.ones(16, 4), torch.zeros(2, 4), torch.zeros(2, 4)
    with pytest.raises((RuntimeError, ValueError), match="w_ih"):
        torch.ops.fastrnn.lstm_layer_forward(x, torch.ones(16, 6), w_hh, None, h0, c0, None, False)
