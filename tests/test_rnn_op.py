"""fastrnn::rnn and fastrnn::cell (csrc/rnn.cpp): on the cpu backend a module's or cell's whole forward over
tensor or packed input is one C++ op, never functional.py's layer loop. Outputs, states and every gradient
against torch.nn (test_modules.py checks the full matrix of options through the same path)."""
from __future__ import annotations

import pytest
import torch

import fastrnn
from _models import CELLS, INPUTS, flatten, make_input, twins
from fastrnn import _ext, functional

pytestmark = pytest.mark.skipif(not _ext.has_cpu(), reason="fastrnn._C is not built")


@pytest.fixture
def stack_calls(monkeypatch):
    """The calls of functional._stack, the Python layer loop, which still runs them."""
    calls = []
    stack = functional._stack

    def counted(*args, **kwargs):
        calls.append(args[0])
        return stack(*args, **kwargs)

    monkeypatch.setattr(functional, "_stack", counted)
    return calls


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("with_hx", [True, False])
def test_every_input_runs_in_one_op(cell, kind, with_hx, stack_calls):
    ref, fast = twins(cell, num_layers=2, bidirectional=True, batch_first=True, backend="cpu")
    build, leaves = make_input(kind, ref, with_hx=with_hx)
    want, got = flatten(ref(*build())), flatten(fast(*build()))
    assert stack_calls == []
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    cot = [torch.randn_like(t) for t in want]
    params = list(ref.parameters())
    for a, b in zip(torch.autograd.grad(got, leaves + list(fast.parameters()), cot),
                    torch.autograd.grad(want, leaves + params, cot), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_run_in_one_op(cls, batched, monkeypatch):
    def python_path(*args, **kwargs):
        raise AssertionError("the cell took functional._forward")

    monkeypatch.setattr(functional, "_forward", python_path)
    torch.manual_seed(0)
    ref = getattr(torch.nn, cls)(4, 5)
    fast = getattr(fastrnn, cls)(4, 5, backend="cpu")
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(*((3,) if batched else ()), 4)
    tensors = lambda r: list(r) if isinstance(r, tuple) else [r]  # noqa: E731  (LSTMCell returns (h, c))
    for hx in (None, ref(x)):
        for a, b in zip(tensors(fast(x, hx)), tensors(ref(x, hx)), strict=True):
            torch.testing.assert_close(a, b)


def test_python_path_where_autocast(stack_calls):
    ref, fast = twins("lstm", backend="cpu")
    build, _ = make_input("packed", ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast(*build())
    assert stack_calls == ["lstm"]


def _side_by_side_threads(call) -> set[int]:
    """The threads of the "fastrnn::side_by_side" ranges that call() ran, as torch.profiler recorded them."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        call()
    return {e.thread for e in prof.events() if e.name == "fastrnn::side_by_side"}


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="the directions run side by side on two threads")
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["padded", "packed_unsorted"])
def test_directions_side_by_side(cell, kind, monkeypatch):
    """A bidirectional layer's directions run on two threads (csrc/cpu/side_by_side.h), forward and backward
    (one node for both, layer.cpp), with the outputs and gradients of torch.nn and of the same op running
    them one after the other."""
    ref, fast = twins(cell, num_layers=2, bidirectional=True, backend="cpu")
    build, leaves = make_input(kind, ref, T=6)
    want = flatten(ref(*build()))
    cot = [torch.randn_like(t) for t in want]
    want_grads = torch.autograd.grad(want, leaves + list(ref.parameters()), cot)
    for side_by_side in ("1", "0"):
        monkeypatch.setenv("FASTRNN_CPU_SIDE_BY_SIDE", side_by_side)
        threads = 2 if side_by_side == "1" else 0
        with torch.no_grad():
            assert len(_side_by_side_threads(lambda: fast(*build()))) == threads
        got = []
        assert len(_side_by_side_threads(lambda: got.extend(flatten(fast(*build()))))) == threads
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)
        got_grads = []
        params = leaves + list(fast.parameters())
        assert len(_side_by_side_threads(lambda: got_grads.extend(torch.autograd.grad(got, params, cot)))) == threads
        for a, b in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="the directions run side by side on two threads")
def test_directions_side_by_side_keep_inference_mode():
    """The second thread runs under the caller's thread-local state: inference mode here, and the profiler's
    callbacks, without which it would not see that thread's range."""
    ref, fast = twins("lstm", bidirectional=True, backend="cpu")
    with torch.inference_mode():
        x = torch.randn(6, 3, 4)
        assert len(_side_by_side_threads(lambda: fast(x))) == 2
        for a, b in zip(flatten(fast(x)), flatten(ref(x)), strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="the directions run side by side on two threads")
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_directions_side_by_side_double_backward(cell):
    """create_graph=True through the one node of both directions: the second derivative of torch.nn's."""
    ref, fast = twins(cell, bidirectional=True, backend="cpu", dtype=torch.float64)
    x = torch.randn(5, 2, 4, dtype=torch.float64, requires_grad=True)
    grads = []
    for model in (ref, fast):
        (dx,) = torch.autograd.grad(model(x)[0].pow(2).sum(), x, create_graph=True)
        grads.append(torch.autograd.grad(dx.pow(2).sum(), [x, *model.parameters()]))
    for a, b in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(a, b)
