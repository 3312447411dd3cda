"""One step on the cpu backend (csrc/cpu/step.h): a cell's call, or a sequence of one step, runs its two
products and the cell's kernel directly instead of the layer op, as its own autograd node where a gradient is
wanted (csrc/step_node.cpp). Against torch.nn in float64, against the layer op it replaces (FASTRNN_CPU_STEP=0),
and where it must not run (float64, a longer sequence, the scalar build)."""
from __future__ import annotations

import os

import pytest
import torch

import fastrnn
from fastrnn import _ext
from tolerance import assert_close_rule

pytestmark = pytest.mark.skipif(not _ext.has_cpu(), reason="fastrnn._C is not built")

CELLS = {"lstm": "LSTMCell", "gru": "GRUCell", "rnn_tanh": "RNNCell", "rnn_relu": "RNNCell"}
MODULES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}


def _kwargs(mode: str, bias: bool) -> dict:
    return {"bias": bias, **({"nonlinearity": mode[4:]} if mode.startswith("rnn") else {})}


def _pair(cls: str, mode: str, *args, bias: bool = True, **kwargs):
    """torch.nn's module in float64 and fastrnn's in float32 with the same weights."""
    torch.manual_seed(0)
    ref = getattr(torch.nn, cls)(*args, **_kwargs(mode, bias), **kwargs).double()
    ours = getattr(fastrnn, cls)(*args, **_kwargs(mode, bias), **kwargs, backend="cpu")
    ours.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    return ref, ours


def _layer_op_calls(fn) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.name == "fastrnn::layer" for e in prof.events())


def _step_runs() -> bool:
    """Whether the step path exists in this process: the scalar build and FASTRNN_CPU_STEP=0 take the layer op."""
    return os.environ.get("FASTRNN_CPU_VEC") != "0" and os.environ.get("FASTRNN_CPU_STEP") != "0"


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def _state(mode: str, shape: tuple[int, ...], transposed: bool) -> object:
    """A random state of `shape` (as a non-contiguous view where `transposed`): (h, c) for an LSTM."""
    def one():
        t = torch.randn(*shape[::-1], dtype=torch.float64)
        return t.t() if transposed and len(shape) == 2 else t.reshape(shape)
    return (one(), one()) if mode == "lstm" else one()


def _float(state):
    return tuple(s.float() for s in state) if isinstance(state, tuple) else state.float()


@pytest.mark.parametrize("mode", list(CELLS))
@pytest.mark.parametrize("batch", [None, 1, 3, 6], ids=["unbatched", "B1", "B3", "B6"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("given", ["none", "state", "strided"])
def test_one_step_cell(mode, batch, bias, given):
    I, H = 20, 33  # neither a multiple of a vector's width
    ref, ours = _pair(CELLS[mode], mode, I, H, bias=bias)
    lead = () if batch is None else (batch,)
    x = torch.randn(*lead, I, dtype=torch.float64)
    hx = None if given == "none" else _state(mode, (*lead, H), given == "strided")
    args = (x,) if hx is None else (x, hx)
    with torch.no_grad():
        expected = _flat(ref(*args))
        run = lambda: ours(x.float(), *(() if hx is None else (_float(hx),)))  # noqa: E731
        got = _flat(run())
        assert _layer_op_calls(run) == (0 if _step_runs() else 1)
    for a, b in zip(got, expected, strict=True):
        assert_close_rule(a, b)


@pytest.mark.parametrize("mode", list(CELLS))
def test_one_step_cell_wide(mode):
    """Weights large enough that the products at batch 1 split their rows between threads (step.cpp)."""
    ref, ours = _pair(CELLS[mode], mode, 130, 131)
    x = torch.randn(1, 130, dtype=torch.float64)
    hx = _state(mode, (1, 131), False)
    with torch.no_grad():
        for a, b in zip(_flat(ours(x.float(), _float(hx))), _flat(ref(x, hx)), strict=True):
            assert_close_rule(a, b)


@pytest.mark.parametrize("mode", list(MODULES))
@pytest.mark.parametrize("layers,bidirectional,batch_first,batched",
                         [(1, False, False, True), (2, True, True, True), (2, True, False, False)],
                         ids=["1layer", "2layers-bi-batch_first", "2layers-bi-unbatched"])
def test_one_step_sequence(mode, layers, bidirectional, batch_first, batched):
    I, H, B = 7, 18, 2
    ref, ours = _pair(MODULES[mode], mode, I, H, num_layers=layers, bidirectional=bidirectional,
                      batch_first=batch_first)
    x = torch.randn(B, 1, I, dtype=torch.float64) if batch_first else torch.randn(1, B, I, dtype=torch.float64)
    x = x if batched else x[:, 0]  # [1, I]: one step, unbatched
    hx = _state(mode, (layers * (2 if bidirectional else 1), *((B,) if batched else ()), H), False)
    with torch.no_grad():
        expected = _flat(ref(x, hx))
        run = lambda: ours(x.float(), _float(hx))  # noqa: E731
        got = _flat(run())
        assert _layer_op_calls(run) == (0 if _step_runs() else layers * (2 if bidirectional else 1))
    for a, b in zip(got, expected, strict=True):
        assert_close_rule(a, b)


@pytest.mark.parametrize("mode", list(CELLS))
def test_one_step_against_layer_op(mode, monkeypatch):
    """The same calls with the step path and with the layer op it stands in for: close, not bitwise (the
    products sum in another order)."""
    _, ours = _pair(CELLS[mode], mode, 20, 33)
    x = torch.randn(5, 20)
    hx = _float(_state(mode, (5, 33), True))
    results = {}
    for step in ("1", "0"):
        monkeypatch.setenv("FASTRNN_CPU_STEP", step)
        with torch.no_grad():
            results[step] = _flat(ours(x, hx))
    for a, b in zip(results["1"], results["0"], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", list(CELLS))
def test_one_step_cell_large_products(mode):
    """Products over oneDNN's threshold (8 MFLOP: I=H=320, batch 16), which a step of up to 128 rows runs on the
    panel GEMM (step.cpp): outputs and every gradient against torch.nn's in float64."""
    I, H, B = 320, 320, 16
    ref, ours = _pair(CELLS[mode], mode, I, H)
    _assert_every_gradient(mode, ref, ours, torch.randn(B, I, dtype=torch.float64), _state(mode, (B, H), True))


@pytest.mark.parametrize("mode", list(CELLS))
@pytest.mark.parametrize("batch", [None, 1, 6], ids=["unbatched", "B1", "B6"])
@pytest.mark.parametrize("wanted", ["all", "input", "weights"])
def test_one_step_cell_gradients(mode, batch, wanted):
    """Every gradient against torch.nn's in float64; only those wanted are computed (the rest stay None)."""
    I, H = 20, 33
    ref, ours = _pair(CELLS[mode], mode, I, H)
    lead = () if batch is None else (batch,)
    x = torch.randn(*lead, I, dtype=torch.float64)
    hx = _state(mode, (*lead, H), True)
    states = list(hx) if isinstance(hx, tuple) else [hx]
    ours.requires_grad_(wanted != "input")
    ref.requires_grad_(wanted != "input")
    results = []
    for m, dtype in ((ref, torch.float64), (ours, torch.float32)):
        leaves = [t.to(dtype).requires_grad_(wanted != "weights") for t in [x, *states]]
        out = _flat(m(leaves[0], tuple(leaves[1:]) if mode == "lstm" else leaves[1]))
        cot = [torch.ones_like(o) / o.numel() ** 0.5 for o in out]
        wrt = [t for t in leaves if t.requires_grad] + [p for p in m.parameters() if p.requires_grad]
        results.append((out, torch.autograd.grad(out, wrt, cot)))
        if m is ours:
            assert _layer_op_calls(lambda: m(*([leaves[0], tuple(leaves[1:])] if mode == "lstm" else leaves))) == (
                0 if _step_runs() else 1)
    (ref_out, ref_grads), (out, grads) = results
    for a, b in zip([*out, *grads], [*ref_out, *ref_grads], strict=True):
        assert_close_rule(a, b)


@pytest.mark.parametrize("mode", list(MODULES))
def test_one_step_sequence_gradients(mode):
    """Two layers, both directions, batch_first, a given state: every gradient against torch.nn's."""
    ref, ours = _pair(MODULES[mode], mode, 7, 18, num_layers=2, bidirectional=True, batch_first=True)
    _assert_every_gradient(mode, ref, ours, torch.randn(3, 1, 7, dtype=torch.float64), _state(mode, (4, 3, 18), False))


def _assert_every_gradient(mode, ref, ours, x, hx):
    """ours (float32) against ref (float64): the outputs and the gradients of x, the state and every parameter."""
    results = []
    for m, dtype in ((ref, torch.float64), (ours, torch.float32)):
        leaves = [t.to(dtype).requires_grad_() for t in [x, *(hx if isinstance(hx, tuple) else [hx])]]
        out = _flat(m(leaves[0], tuple(leaves[1:]) if mode == "lstm" else leaves[1]))
        cot = [torch.ones_like(o) / o.numel() ** 0.5 for o in out]
        results.append((out, torch.autograd.grad(out, leaves + list(m.parameters()), cot)))
    (ref_out, ref_grads), (out, grads) = results
    for a, b in zip([*out, *grads], [*ref_out, *ref_grads], strict=True):
        assert_close_rule(a, b)


@pytest.mark.parametrize("mode", list(CELLS))
def test_one_step_double_backward(mode):
    """create_graph=True: the step node's gradients are differentiable again, as torch.nn's are."""
    results = []
    ref, ours = _pair(CELLS[mode], mode, 4, 5)
    x = torch.randn(2, 4, dtype=torch.float64)
    for m, dtype in ((ref, torch.float64), (ours, torch.float32)):
        xx = x.to(dtype).requires_grad_()
        out = _flat(m(xx))[0]
        (gx,) = torch.autograd.grad(out.pow(2).sum(), xx, create_graph=True)
        results.append(torch.autograd.grad(gx.pow(2).sum(), [xx, *m.parameters()]))
    for a, b in zip(results[1], results[0], strict=True):
        assert_close_rule(a, b)


@pytest.mark.parametrize("mode", list(CELLS))
def test_layer_op_elsewhere(mode):
    """float64, or more than one step: the layer op."""
    _, cell = _pair(CELLS[mode], mode, 6, 5)
    x = torch.randn(2, 6)
    assert _layer_op_calls(lambda: cell(x)) == (0 if _step_runs() else 1)
    assert _layer_op_calls(lambda: cell.double()(x.double())) == 1
    _, seq = _pair(MODULES[mode], mode, 6, 5)
    assert _layer_op_calls(lambda: seq(torch.randn(3, 2, 6))) == 1


@pytest.mark.parametrize("mode", list(CELLS))
def test_one_step_empty_batch_gradients(mode):
    """The op called directly on a batch of none (the module takes Python's path there): zero weight gradients."""
    _, cell = _pair(CELLS[mode], mode, 4, 5)
    x = torch.randn(0, 4, requires_grad=True)
    h = torch.ops.fastrnn.cell.default(mode, x, [], cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)[0]
    assert h.shape == (0, 5)
    for g in torch.autograd.grad(h.sum(), list(cell.parameters())):
        assert torch.equal(g, torch.zeros_like(g))
