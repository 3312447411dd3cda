"""The cpu backend's bfloat16 time loops on the pairs GEMM (vdpbf16ps, CPUs with AVX512-BF16: h_{t-1} and W_hh
read as bfloat16, and the LSTM's input projection in the steps' GEMMs where FASTRNN_CPU_FUSE_INPUT=1 or the
size says so) and on the float path (FASTRNN_CPU_BF16_DOT=0: h_t kept in float), each against torch.nn in
float64 by the tolerance rule; and the vectorized bfloat16 stores, which round to nearest even."""
from __future__ import annotations

import os
import pathlib

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn
from fastrnn import _ext
from tolerance import assert_close_rule

pytestmark = pytest.mark.skipif(not _ext.has_cpu(), reason="fastrnn._C is not built")


def pairs_gemm_runs() -> bool:
    """Whether this process's bfloat16 loops can take the pairs GEMM (test_cpu_builds runs other builds)."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    return (torch.backends.cpu.get_cpu_capability() == "AVX512" and " avx512_bf16" in flags
            and os.environ.get("FASTRNN_CPU_VEC", "") == "" and os.environ.get("FASTRNN_CPU_GEMM", "") != "mkl")


def forward(module, x, lengths):
    """The output (its data, for packed input)."""
    out = module(pack_padded_sequence(x, lengths) if lengths is not None else x)[0]
    return out.data if lengths is not None else out


def run(module, x, lengths):
    """Output and the gradients of x and of every parameter, for a fixed output gradient."""
    x = x.detach().requires_grad_()
    out = forward(module, x, lengths)
    grad = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view(out.shape).to(out.dtype)
    return [out, *torch.autograd.grad(out, [x, *module.parameters()], grad)]


@pytest.mark.parametrize("dot", ["1", "0"], ids=["pairs", "float"])
@pytest.mark.parametrize("cell,I,B,fuse,packed", [
    ("LSTM", 16, 1, "1", False), ("LSTM", 16, 11, "0", True), ("LSTM", 16, 11, "1", True), ("LSTM", 7, 3, "", False),
    ("GRU", 16, 1, "", False), ("GRU", 10, 11, "", True), ("RNN", 16, 1, "", False), ("RNN", 10, 11, "", True)])
def test_bfloat16_steps_match_float64(cell, I, B, fuse, packed, dot, monkeypatch):
    """H=20: a partial block of units, and two bfloat16s per element; B=11 makes two row tiles and a team of
    two; packed steps shrink from 11 to 2 rows, so their h_{t-1} comes from h0 in part; bidirectional runs a
    reversed loop; I=7 is odd, so the LSTM cannot fuse its input projection there."""
    monkeypatch.setenv("FASTRNN_CPU_BF16_DOT", dot)
    monkeypatch.setenv("FASTRNN_CPU_FUSE_INPUT", fuse)
    torch.manual_seed(0)
    T, H = 6, 20
    ref = getattr(torch.nn, cell)(I, H, bidirectional=True).double()
    ours = getattr(fastrnn, cell)(I, H, bidirectional=True, backend="cpu").double()
    ours.load_state_dict(ref.state_dict())
    same = getattr(torch.nn, cell)(I, H, bidirectional=True).double()
    same.load_state_dict(ref.state_dict())
    ours, same = ours.bfloat16(), same.bfloat16()
    x = torch.randn(T, B, I, dtype=torch.float64)
    lengths = torch.linspace(T, 2, B).long() if packed else None
    want, got, low = run(ref, x, lengths), run(ours, x.bfloat16(), lengths), run(same, x.bfloat16(), lengths)
    names = ["output", "x", *(n for n, _ in ref.named_parameters())]
    for name, a, r, s in zip(names, got, want, low, strict=True):
        assert a.dtype == torch.bfloat16, name
        assert_close_rule(a, r, s, name=name)
    if dot == "1" and pairs_gemm_runs():  # the pairs GEMM ran: its products round h_{t-1}, the float path's do not
        with torch.no_grad():
            pairs = forward(ours, x.bfloat16(), lengths)
            monkeypatch.setenv("FASTRNN_CPU_BF16_DOT", "0")
            assert not torch.equal(pairs, forward(ours, x.bfloat16(), lengths))


@pytest.mark.parametrize("H", [2, 16, 34])
def test_bfloat16_stores_round_to_nearest_even(H, monkeypatch):
    """ReLU RNN steps whose sums are exact in float: xw plus h0 times 2^-8 on W_hh's diagonal. The stored
    output is that sum rounded to bfloat16: ties to even (1 + 2^-8 -> 1, 1 + 3 * 2^-8 -> 1 + 2^-6), NaN stays
    NaN. H=2 and 34 leave partial vectors, 16 and 34 full ones."""
    B = 8
    xw = torch.tensor([1.0, 1.0078125, -3.0, 0.5, float("nan"), 2.0, 1.0, 256.0]).repeat_interleave(H).view(1, B, H)
    h0 = torch.tensor([1.0, 1.0, 0.0, -1.0, 1.0, 0.0, -1.0, 1.0]).repeat_interleave(H).view(B, H)
    w_hh = torch.eye(H) * 2 ** -8
    want = torch.relu(xw[0] + h0 * 2 ** -8).bfloat16()
    for dot in ["1", "0"]:
        monkeypatch.setenv("FASTRNN_CPU_BF16_DOT", dot)
        out, h_n = torch.ops.fastrnn.rnn_relu_forward(xw.bfloat16(), w_hh.bfloat16(), h0.bfloat16(), None, False)
        nan = torch.isnan(want)
        assert torch.equal(torch.isnan(out[0]), nan) and torch.equal(torch.isnan(h_n), nan), dot
        assert torch.equal(out[0][~nan].view(torch.int16), want[~nan].view(torch.int16)), dot
        assert torch.equal(h_n[~nan].view(torch.int16), want[~nan].view(torch.int16)), dot
