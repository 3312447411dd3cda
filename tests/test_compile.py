"""torch.compile(fullgraph=True): modules, cells and the functional API trace without a graph break,
forward and backward, on every backend, and agree with eager.

Compiling is slow on a small CPU, so the matrix uses the ``aot_eager`` compiler (Dynamo and
AOTAutograd trace forward and backward exactly as for inductor, without generating code) and the
default inductor compiler runs one configuration per backend.
"""
from __future__ import annotations

import pytest
import torch

import fastrnn
from _models import flatten, make_input, twins

# Under the interpreter the Triton ops are opaque to the compiler (see fastrnn/_triton/ops.py): the
# graph calls them as it calls the C++ ops, where on a GPU it traces into their kernels.
BACKENDS = [pytest.param("torch", id="torch")] + [pytest.param(p.id, id=p.id, marks=p.marks)
                                                  for p in __import__("conftest").FUSED]

# One configuration per cell family, each exercising other module options.
FAMILIES = {
    "rnn_tanh": dict(cell="rnn_tanh", num_layers=2),
    "lstm_proj": dict(cell="lstm_proj", batch_first=True),
    "gru": dict(cell="gru", bidirectional=True),
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # every test compiles from scratch, far from the recompile limit
    yield
    torch._dynamo.reset()


def _eager_and_compiled(fn, build, leaves, compiler):
    """Outputs and input gradients of ``fn(*build())`` in eager mode and compiled with fullgraph=True."""
    results = []
    for f in (fn, torch.compile(fn, fullgraph=True, backend=compiler)):
        outs = flatten(f(*build()))
        grads = torch.autograd.grad([o.sum() for o in outs], leaves + list(fn.parameters()))
        results.append((outs, grads))
    return results


def _assert_same(eager, compiled):
    (out_e, grad_e), (out_c, grad_c) = eager, compiled
    for a, b in zip(out_c + list(grad_c), out_e + list(grad_e), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_module_compiles_fullgraph(family, backend):
    options = dict(FAMILIES[family])
    ref, fast = twins(options.pop("cell"), backend=backend, **options)
    build, leaves = make_input("padded", ref, T=4, B=2)
    _assert_same(*_eager_and_compiled(fast, build, leaves, "aot_eager"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_packed_bidirectional_compiles_fullgraph(backend):
    ref, fast = twins("lstm", backend=backend, bidirectional=True)
    build, leaves = make_input("packed_unsorted", ref, T=5, B=3)
    _assert_same(*_eager_and_compiled(fast, build, leaves, "aot_eager"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_functional_and_cell_compile_fullgraph(backend):
    _, fast = twins("gru", backend=backend)
    weights = list(fast._flat_weights)
    x = torch.randn(4, 2, 4, requires_grad=True)

    def run(x):
        out, h = fastrnn.functional.gru(x, None, weights, backend=backend)
        return out.sum() + h.square().sum()

    eager_grads = torch.autograd.grad(run(x), [x] + weights)
    compiled = torch.compile(run, fullgraph=True, backend="aot_eager")
    for a, b in zip(torch.autograd.grad(compiled(x), [x] + weights), eager_grads, strict=True):
        torch.testing.assert_close(a, b)

    torch.manual_seed(0)
    cell = fastrnn.LSTMCell(4, 3, backend=backend)
    step = torch.randn(2, 4, requires_grad=True)
    eager = cell(step)
    got = torch.compile(cell, fullgraph=True, backend="aot_eager")(step)
    for a, b in zip(got, eager, strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(torch.autograd.grad(sum(t.sum() for t in got), [step, cell.weight_hh]),
                    torch.autograd.grad(sum(t.sum() for t in eager), [step, cell.weight_hh])):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.values[0] in ("torch", "cpu")])
def test_inductor_matches_eager(backend):
    """The default compiler, code generation included (one small configuration: inductor is slow here)."""
    ref, fast = twins("lstm", backend=backend)
    build, leaves = make_input("padded", ref, T=3, B=2)
    _assert_same(*_eager_and_compiled(fast, build, leaves, "inductor"))


def test_unavailable_backend_raises_while_compiling():
    lstm = fastrnn.LSTM(4, 3, backend="cuda")
    with pytest.raises(RuntimeError, match="backend 'cuda'"):
        torch.compile(lstm, fullgraph=True, backend="aot_eager")(torch.randn(3, 2, 4))
