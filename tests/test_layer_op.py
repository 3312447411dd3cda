"""The C++ layer node (torch.ops.fastrnn.layer, csrc/layer.cpp), which eager calls on the cpu backend
run, against the Python LayerFunction it stands in for: outputs and the gradients of every input, with
and without biases, projection and packing, each gradient only where its input needs one, and
double backward (which calls back into Python)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from fastrnn import _ext
from fastrnn.autograd import LayerFunction, fused_layer
from tolerance import assert_close_rule

pytestmark = pytest.mark.skipif(not _ext.has_cpu(), reason="fastrnn._C is not built")

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _inputs(cell, bias, proj, packed, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    T, B, I, H = 4, 3, 5, 6
    P = 4 if proj else H
    rand = lambda *s: (torch.randn(*s, generator=g, dtype=torch.float64) * 0.5).to(dtype)  # noqa: E731
    batch_sizes = torch.tensor([3, 3, 2, 1]) if packed else None
    x = rand(int(batch_sizes.sum()), I) if packed else rand(T, B, I)
    G = GATES[cell] * H
    return [x, rand(G, I), rand(G, P), rand(G) if bias else None, rand(G) if bias else None,
            rand(P, H) if proj else None, rand(B, P), rand(B, H) if cell == "lstm" else None, batch_sizes]


CASES = [(cell, bias, False, packed) for cell in GATES for bias in (True, False) for packed in (False, True)]
CASES += [("lstm", True, True, False), ("lstm", False, True, True)]


@pytest.mark.parametrize("cell,bias,proj,packed,dtype", [(*c, torch.float32) for c in CASES] + [
    ("lstm", True, False, False, torch.bfloat16), ("lstm", True, True, True, torch.bfloat16),
    ("gru", True, False, True, torch.bfloat16)])
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_matches_layer_function(cell, bias, proj, packed, dtype, reverse):
    """The same ops in the same order: equal in bfloat16 (whose LSTM gates overwrite xw in the C++ node). In
    float32 the node's own products run on the panel GEMM where that runs (cpu::matmul), LayerFunction's on
    MKL: equal to rounding."""
    exact = {"rtol": 0, "atol": 0} if dtype == torch.bfloat16 else {}
    inputs = _inputs(cell, bias, proj, packed, dtype)
    tensors = inputs[:-1]
    # Every other input needs a gradient (x and w_hh, ... or w_ih, ...), the rest none.
    for i, t in enumerate(tensors):
        if t is not None and i % 2 == int(reverse):
            t.requires_grad_()
    got = torch.ops.fastrnn.layer(cell, *inputs, reverse)
    want = LayerFunction.apply(cell, "cpu", *inputs, reverse)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **exact)
    leaves = [t for t in tensors if t is not None and t.requires_grad]
    grads = [torch.randn_like(o) for o in want]
    for a, b in zip(torch.autograd.grad(got, leaves, grads), torch.autograd.grad(want, leaves, grads)):
        torch.testing.assert_close(a, b, **exact)


@pytest.mark.parametrize("cell", list(GATES))
def test_layer_double_backward(cell):
    inputs = _inputs(cell, True, cell == "lstm", False, torch.float64)
    tensors = [t.requires_grad_() for t in inputs[:-1] if t is not None]

    def penalty(fn):
        out = fn()
        first = torch.autograd.grad(out[0].square().sum(), tensors, create_graph=True)
        return torch.autograd.grad(sum(g.square().sum() for g in first), tensors)

    got = penalty(lambda: torch.ops.fastrnn.layer(cell, *inputs, False))
    want = penalty(lambda: LayerFunction.apply(cell, "cpu", *inputs, False))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_layer_rejects_unknown_cell():
    with pytest.raises(ValueError, match="cell must be"):
        torch.ops.fastrnn.layer("lstmx", *_inputs("lstm", True, False, False), False)


@pytest.mark.parametrize("cell,bias,proj,packed", CASES)
def test_layer_without_gradient(cell, bias, proj, packed):
    """No gradient wanted (no_grad, inference_mode, or no input requiring one): the forward alone, no node."""
    inputs = _inputs(cell, bias, proj, packed)
    want = fused_layer(cell, "cpu", *inputs, True, save=False)[0]
    inputs[1].requires_grad_()
    with torch.no_grad():
        plain = torch.ops.fastrnn.layer(cell, *inputs, True)
    with torch.inference_mode():
        inference = torch.ops.fastrnn.layer(cell, *[t.detach() if t is not None else None for t in inputs], True)
    for got in (plain, inference):
        assert all(t.grad_fn is None for t in got)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)


# The projection and its gradients: 2 * 400 * 64 * ~256 >= 8e6 FLOPs; a [9216, 256] projection (9.4 MB) in two blocks.
# The weight gradients run as C^T = b^T @ a where b is the narrower (dW_ih, dW_hh), else as C = a^T @ b (rnn's
# square ones, LSTM's dW_hr = dh^T @ o*tanh(c): [18432, 32]^T @ [18432, 64]), in 4 MB chunks of rows past that.
@pytest.mark.parametrize("cell,T,B,I,proj,onednn", [(cell, 40, 10, 64, 0, True) for cell in GATES] + [
    ("lstm", 256, 36, 16, 0, True), ("lstm", 256, 36, 16, 0, False),
    ("lstm", 512, 36, 16, 32, True)])
def test_layer_large_products(cell, T, B, I, proj, onednn, monkeypatch):
    """Products large enough for oneDNN where it beats MKL (cpu::matmul; elsewhere, or with oneDNN off, the
    same at::mm as LayerFunction): outputs and every gradient as LayerFunction's."""
    g = torch.Generator().manual_seed(2)
    H = 256 // GATES[cell]
    G, P = GATES[cell] * H, proj or H
    # Weights at nn's scale, 1/sqrt(fan-in): larger ones make the recurrence chaotic, amplifying rounding.
    shapes = [(T, B, I), (G, I), (G, P), (G,), (G,), (P, H) if proj else None, (B, P),
              (B, H) if cell == "lstm" else None, None]
    scales = [1, I**-0.5, P**-0.5, H**-0.5, H**-0.5, H**-0.5, 1, 1, 0]
    inputs = [torch.randn(*s, generator=g) * c if s else None for s, c in zip(shapes, scales)]
    leaves = [t.requires_grad_() for t in inputs if t is not None]
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", onednn)
    got = torch.ops.fastrnn.layer(cell, *inputs, False)
    want = LayerFunction.apply(cell, "cpu", *inputs, False)
    # Scaled so the weight gradients, sums over T * B rows, stay O(1) like the outputs.
    grads = [torch.randn_like(o) * (T * B) ** -0.5 for o in want]
    for a, b in zip([*got, *torch.autograd.grad(got, leaves, grads)], [*want, *torch.autograd.grad(want, leaves, grads)],
                    strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("proj,packed,reverse", [(False, False, False), (False, True, True), (True, False, True),
                                                 (True, True, False)])
def test_fused_input_projection(proj, packed, reverse, bias, monkeypatch):
    """LSTM's input projection run in the steps' panel GEMMs (FASTRNN_CPU_FUSE_INPUT=1 forces it wherever the
    panel GEMM runs): outputs and every gradient, and the forward without a gradient, as LayerFunction's, which
    projects first (as does the node with =0). H=20 leaves a partial block of units; 11 rows make two row tiles and a team of two; the
    packed reverse steps grow from 2 to 11 rows, so their h_{t-1} comes from h0 in part."""
    g = torch.Generator().manual_seed(3)
    T, B, I, H = 6, 11, 7, 20
    P, G = (5 if proj else H), 4 * H
    batch_sizes = torch.tensor([11, 11, 9, 6, 6, 2]) if packed else None
    rand = lambda *s: torch.randn(*s, generator=g) * 0.5  # noqa: E731
    inputs = [rand(int(batch_sizes.sum()), I) if packed else rand(T, B, I), rand(G, I), rand(G, P),
              rand(G) if bias else None, rand(G) if bias else None, rand(P, H) if proj else None, rand(B, P),
              rand(B, H), batch_sizes]
    leaves = [t.requires_grad_() for t in inputs[:-1] if t is not None]
    want = LayerFunction.apply("lstm", "cpu", *inputs, reverse)
    grads = [torch.randn_like(o) for o in want]
    want_grads = torch.autograd.grad(want, leaves, grads)
    monkeypatch.setenv("FASTRNN_CPU_FUSE_INPUT", "1")
    got = torch.ops.fastrnn.layer("lstm", *inputs, reverse)
    for a, b in zip([*got, *torch.autograd.grad(got, leaves, grads)], [*want, *want_grads], strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        for a, b in zip(torch.ops.fastrnn.layer("lstm", *inputs, reverse), got, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    monkeypatch.setenv("FASTRNN_CPU_FUSE_INPUT", "0")
    unfused = torch.ops.fastrnn.layer("lstm", *inputs, reverse)
    for a, b in zip(unfused, want, strict=True):
        torch.testing.assert_close(a, b)
    if os.environ.get("FASTRNN_CPU_GEMM") == "panel" and os.environ.get("FASTRNN_CPU_VEC") != "0":
        # The panel GEMM runs (test_cpu_builds sets this): the fused sums round differently from xw's.
        assert not torch.equal(got[0], unfused[0])


@pytest.mark.parametrize("cell,proj", [(cell, False) for cell in GATES] + [("lstm", True)])
@pytest.mark.parametrize("packed,reverse,fuse", [(False, False, "1"), (True, True, "1"), (True, False, "0")])
@pytest.mark.parametrize("split", ["rows", "units"])
def test_team_split(cell, proj, packed, reverse, fuse, split, monkeypatch):
    """The time loops' team split by batch rows or by unit blocks (FASTRNN_CPU_TEAM forces either):
    outputs and every gradient against the float64 node (which runs the scalar loops). On two threads 17 rows
    split 8 + 9; the packed steps shrink from 17 to 3 rows, so late steps leave the second member without
    rows (or, reversed, grow and take h_{t-1} from h0 in part); H=20 leaves a partial block of units."""
    g = torch.Generator().manual_seed(5)
    T, B, I, H = 5, 17, 7, 20
    P, G = (5 if proj else H), GATES[cell] * H
    batch_sizes = torch.tensor([17, 17, 12, 8, 3]) if packed else None
    rand = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64) * 0.5  # noqa: E731
    inputs = [rand(int(batch_sizes.sum()), I) if packed else rand(T, B, I), rand(G, I), rand(G, P), rand(G),
              rand(G), rand(P, H) if proj else None, rand(B, P), rand(B, H) if cell == "lstm" else None,
              batch_sizes]
    leaves = [t.requires_grad_() for t in inputs[:-1] if t is not None]
    want = torch.ops.fastrnn.layer(cell, *inputs, reverse)
    # Scaled so the weight gradients, sums over the rows, stay O(1) like the outputs.
    grads = [torch.randn_like(o) * len(inputs[0].flatten(0, -2)) ** -0.5 for o in want]
    want_grads = torch.autograd.grad(want, leaves, grads)
    single = [t.detach().float().requires_grad_() if t is not None and t.is_floating_point() else t for t in inputs]
    monkeypatch.setenv("FASTRNN_CPU_TEAM", split)
    monkeypatch.setenv("FASTRNN_CPU_FUSE_INPUT", fuse)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = torch.ops.fastrnn.layer(cell, *single, reverse)
        got_grads = torch.autograd.grad(got, [t for t in single[:-1] if t is not None], [x.float() for x in grads])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip([*got, *got_grads], [*want, *want_grads], strict=True):
        assert_close_rule(a, b)


@pytest.mark.parametrize("B,packed,reverse", [(1, False, False), (2, False, True), (2, True, True), (2, True, False)])
@pytest.mark.parametrize("bias", [True, False])
def test_products_beside_loop(B, packed, reverse, bias, monkeypatch):
    """An LSTM whose time loop runs on one thread (B <= 2, H=20: a step's GEMM too small for a team), given two,
    runs its input projection ahead of the forward loop and its weight gradients behind the backward loop on
    the second (FASTRNN_CPU_BESIDE=0 turns that off; cpu/ahead.h): outputs and every gradient against the
    float64 node, also with only some inputs needing one (then dx or dW_ih is left out), and the same bits at
    every call (the chunks are fixed by the shapes). T=37 makes chunks of 8 and 16 steps and a partial last
    one; packed, the steps shrink from 2 rows to 1 (reversed, grow: h_{t-1} from h0 in part). x (unpacked,
    as batch_first gives it) and w_ih are views that are not contiguous."""
    g = torch.Generator().manual_seed(7)
    T, I, H = 37, 6, 20
    batch_sizes = torch.tensor([2] * 20 + [1] * 17) if packed else None
    rand = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64) * 0.5  # noqa: E731
    # Weights at torch.nn's scale: the gradients of 37 steps stay well conditioned.
    w = lambda *s: rand(*s) * H ** -0.5  # noqa: E731
    inputs = [rand(int(batch_sizes.sum()), I) if packed else rand(B, T, I).transpose(0, 1), w(I, 4 * H).t(),
              w(4 * H, H), w(4 * H) if bias else None, w(4 * H) if bias else None, None, rand(B, H), rand(B, H),
              batch_sizes]
    tensors = [t for t in inputs[:-1] if t is not None]
    single = [t.float() if t is not None and t.is_floating_point() else t for t in inputs]  # strides kept
    leaves = [t for t in single[:-1] if t is not None]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # Every input, then all but x (no dx), then all but w_ih (no dW_ih).
        for skip in (None, 0, 1):
            wanted = [i for i in range(len(tensors)) if i != skip]
            for t in (*tensors, *leaves):
                t.requires_grad_(False)
            for i in wanted:
                tensors[i].requires_grad_()
                leaves[i].requires_grad_()
            want = torch.ops.fastrnn.layer("lstm", *inputs, reverse)
            grads = [torch.randn_like(o) * len(inputs[0].flatten(0, -2)) ** -0.5 for o in want]
            want_grads = torch.autograd.grad(want, [tensors[i] for i in wanted], grads)
            runs = {}
            for beside in ("1", "1", "0"):
                monkeypatch.setenv("FASTRNN_CPU_BESIDE", beside)
                got = torch.ops.fastrnn.layer("lstm", *single, reverse)
                got_grads = torch.autograd.grad(got, [leaves[i] for i in wanted], [x.float() for x in grads])
                for a, b in zip([*got, *got_grads], [*want, *want_grads], strict=True):
                    assert_close_rule(a, b)
                if beside in runs:
                    for a, b in zip(runs[beside], [*got, *got_grads], strict=True):
                        torch.testing.assert_close(a, b, rtol=0, atol=0)
                runs[beside] = [*got, *got_grads]
            if (os.environ.get("FASTRNN_CPU_GEMM") == "panel" and os.environ.get("FASTRNN_CPU_VEC") != "0"
                    and os.environ.get("OMP_THREAD_LIMIT") != "1"):
                # The panel GEMM runs (test_cpu_builds sets this) on two threads: dW_hh came in chunks.
                d_w_hh = len(want) + wanted.index(2)
                assert not torch.equal(runs["1"][d_w_hh], runs["0"][d_w_hh])
    finally:
        torch.set_num_threads(threads)


def test_products_beside_loop_given_one_thread():
    """Where OpenMP gives the team of two one thread (OMP_THREAD_LIMIT=1, while torch still counts two), the
    loop's own thread runs the products, before the forward loop and after the backward one, instead of
    waiting for a second thread that never comes."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "test_products_beside_loop["],
        env={**os.environ, "OMP_THREAD_LIMIT": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout
