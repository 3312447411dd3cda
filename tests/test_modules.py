"""Every module against torch.nn with copied weights: outputs, final states and all gradients."""
from __future__ import annotations

import copy
import itertools
import pickle

import pytest
import torch
from torch import nn

import fastrnn
from _models import CELLS, INPUTS, flatten, make_input, twins
from fastrnn.backends import Backend

BACKENDS = [pytest.param("torch", id="torch"), pytest.param("auto", id="auto")] + [
    pytest.param(p.values[0][0].value, id=p.id, marks=p.marks) for p in __import__("conftest").FUSED]
SLOW_BACKENDS = ("cuda_emulated", "triton")


def _configs():
    """Full product of the module options; slow backends get a covering subset (every value of every axis)."""
    full = []
    for cell, layers, bidir, bf, bias, kind in itertools.product(CELLS, (1, 2, 3), (False, True), (False, True),
                                                                 (True, False), INPUTS):
        full.append((cell, layers, bidir, bf, bias, kind))
    covering = []
    for cell in CELLS:
        for i in range(8):
            covering.append((cell, (1, 2, 3)[i % 3], bool(i % 2), bool(i // 2 % 2), i // 4 % 2 == 0, INPUTS[i % 4]))
    return full, covering


FULL, COVERING = _configs()


def _id(c):
    cell, layers, bidir, bf, bias, kind = c
    return "-".join([cell, f"L{layers}", "bidir" if bidir else "uni", "bf" if bf else "tm",
                     "bias" if bias else "nobias", kind])


def _compare(ref, fast, kind, dtype, B=3):
    build, leaves = make_input(kind, ref, dtype=dtype, B=B)
    ref_out = flatten(ref(*build()))
    fast_out = flatten(fast(*build()))
    for name, a, b in zip(("output", "h_n", "c_n"), fast_out, ref_out):
        torch.testing.assert_close(a, b, msg=lambda m: f"{name}: {m}")
    g = torch.Generator().manual_seed(2)
    cot = [torch.randn(t.shape, generator=g, dtype=dtype) for t in ref_out]
    params = list(ref.parameters())
    ref_grads = torch.autograd.grad(ref_out, leaves + params, cot)
    fast_grads = torch.autograd.grad(fast_out, leaves + list(fast.parameters()), cot)
    names = ["input", "h0", "c0"][:len(leaves)] + [n for n, _ in ref.named_parameters()]
    for name, a, b in zip(names, fast_grads, ref_grads):
        torch.testing.assert_close(a, b, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("config", FULL, ids=[_id(c) for c in FULL])
def test_module_matches_torch(config, dtype, backend):
    if backend in SLOW_BACKENDS and (config not in COVERING or dtype == torch.float64 and config[1] != 1):
        pytest.skip("covered by the smaller matrix for slow backends")
    if backend == "auto" and dtype == torch.float64:
        pytest.skip("auto runs the float32 matrix")
    cell, layers, bidir, bf, bias, kind = config
    ref, fast = twins(cell, num_layers=layers, bidirectional=bidir, batch_first=bf, bias=bias, dtype=dtype,
                      backend=backend)
    _compare(ref, fast, kind, dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_hx_none_means_zeros(cell):
    ref, fast = twins(cell, num_layers=2, bidirectional=True)
    build, _ = make_input("packed_unsorted", ref, with_hx=False)
    for a, b in zip(flatten(fast(*build())), flatten(ref(*build()))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_between_layers_like_torch(cell):
    """Same seed, same dropout masks: torch.nn drops each layer's output but the last's, in training only."""
    ref, fast = twins(cell, num_layers=3, dropout=0.5)
    x = torch.randn(4, 2, 4)
    torch.manual_seed(7)
    expected = flatten(ref(x))
    torch.manual_seed(7)
    got = flatten(fast(x))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    ref.eval(), fast.eval()
    for a, b in zip(flatten(fast(x)), flatten(ref(x))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_return_types_and_shapes(cell):
    ref, fast = twins(cell, num_layers=2, bidirectional=True, batch_first=True)
    for kind in INPUTS:
        build, _ = make_input(kind, ref)
        a, b = fast(*build()), ref(*build())
        assert type(a[0]) is type(b[0]) and type(a[1]) is type(b[1])
        for x, y in zip(flatten(a), flatten(b)):
            assert x.shape == y.shape and x.dtype == y.dtype
        if kind.startswith("packed"):
            for f in ("batch_sizes", "sorted_indices", "unsorted_indices"):
                assert torch.equal(getattr(a[0], f), getattr(b[0], f)) if getattr(b[0], f) is not None else True


@pytest.mark.parametrize("cell", CELLS)
def test_parameters_state_dict_and_repr(cell):
    ref, fast = twins(cell, num_layers=2, bidirectional=True, bias=False)
    assert isinstance(fast, nn.RNNBase) and not isinstance(fast, (nn.RNN, nn.LSTM, nn.GRU))
    assert [n for n, _ in fast.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert repr(fast) == repr(ref)
    ref.load_state_dict(fast.state_dict(), strict=True)  # and back
    torch_cls = type(ref)
    again = torch_cls(**{k: getattr(ref, k) for k in ("input_size", "hidden_size", "num_layers", "bias",
                                                         "bidirectional", "proj_size") if hasattr(ref, k)}
                      if torch_cls is nn.LSTM else {k: getattr(ref, k) for k in ("input_size", "hidden_size",
                                                                                 "num_layers", "bias",
                                                                                 "bidirectional")})
    again.load_state_dict(fast.state_dict(), strict=True)


@pytest.mark.parametrize("cell", CELLS)
def test_in_place_weight_update_is_seen(cell):
    ref, fast = twins(cell)
    x = torch.randn(3, 2, 4)
    fast(x)
    with torch.no_grad():
        for p, q in zip(ref.parameters(), fast.parameters()):
            p.mul_(1.5), q.mul_(1.5)
    for a, b in zip(flatten(fast(x)), flatten(ref(x))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_copy_pickle_and_dtype_conversion(cell):
    ref, fast = twins(cell, num_layers=2)
    clone = pickle.loads(pickle.dumps(copy.deepcopy(fast)))
    x = torch.randn(3, 2, 4)
    for a, b in zip(flatten(clone(x)), flatten(ref(x))):
        torch.testing.assert_close(a, b)
    ref.double(), fast.double()
    for a, b in zip(flatten(fast(x.double())), flatten(ref(x.double()))):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b)


CELL_MODULES = {
    "rnn_tanh": (nn.RNNCell, fastrnn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNNCell, fastrnn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTMCell, fastrnn.LSTMCell, {}),
    "gru": (nn.GRUCell, fastrnn.GRUCell, {}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("with_hx", [True, False], ids=["hx", "nohx"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", CELL_MODULES)
def test_cell_matches_torch(cell, bias, with_hx, batched, backend):
    torch_cls, fast_cls, extra = CELL_MODULES[cell]
    torch.manual_seed(0)
    ref = torch_cls(4, 5, bias=bias, **extra)
    fast = fast_cls(4, 5, bias=bias, backend=backend, **extra)
    fast.load_state_dict(ref.state_dict(), strict=True)
    assert isinstance(fast, torch_cls) and repr(fast) == repr(ref)
    lead = (3,) if batched else ()
    x = torch.randn(*lead, 4, requires_grad=True)
    states = [torch.randn(*lead, 5, requires_grad=True) for _ in range(2 if cell == "lstm" else 1)] if with_hx else []
    hx = None if not with_hx else (tuple(states) if cell == "lstm" else states[0])
    a, b = fast(x, hx), ref(x, hx)
    a, b = (list(a), list(b)) if cell == "lstm" else ([a], [b])
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)
    cot = [torch.randn_like(v) for v in b]
    wrt = [x] + states + list(ref.parameters())
    gb = torch.autograd.grad(b, wrt, cot)
    ga = torch.autograd.grad(a, [x] + states + list(fast.parameters()), cot)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)


class _Scaled(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 0.5 * w


@pytest.mark.parametrize("cell", CELL_MODULES)
def test_cell_with_parametrized_weight(cell):
    """A parametrized weight is no entry of _parameters: the cell reads it as an attribute, like torch's."""
    torch_cls, fast_cls, extra = CELL_MODULES[cell]
    torch.manual_seed(0)
    ref, fast = torch_cls(4, 5, **extra), fast_cls(4, 5, **extra)
    fast.load_state_dict(ref.state_dict())
    for m in (ref, fast):
        nn.utils.parametrize.register_parametrization(m, "weight_hh", _Scaled())
    x = torch.randn(3, 4)
    a, b = ([r] if isinstance(r, torch.Tensor) else list(r) for r in (fast(x), ref(x)))
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v)
    cot = [torch.randn_like(v) for v in b]
    ga, gb = (torch.autograd.grad(out, m.parametrizations.weight_hh.original, cot) for out, m in ((a, fast), (b, ref)))
    torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_functional_over_explicit_weights(mode):
    cell = mode if mode != "lstm" else "lstm_proj"
    ref, _ = twins(cell, num_layers=2, bidirectional=True)
    x = torch.randn(4, 3, 4)
    fn = getattr(fastrnn.functional, mode)
    out = fn(x, None, ref._flat_weights, True, 2, 0.0, False, True, False)
    for a, b in zip(flatten(out), flatten(ref(x))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell,kind", [("lstm", "packed_unsorted"), ("lstm_proj", "padded"), ("gru", "packed_unsorted"),
                                       ("rnn_tanh", "unbatched")])
def test_inference_mode(cell, kind, backend):
    """Under inference_mode (and no_grad) the layers run without an autograd node and without saved
    activations (save=False): outputs and states as torch.nn's."""
    ref, fast = twins(cell, backend=backend, num_layers=2, bidirectional=True, dropout=0.5)
    ref.eval(), fast.eval()
    build, _ = make_input(kind, ref)
    for context in (torch.inference_mode, torch.no_grad):
        with context():
            got, expected = flatten(fast(*build())), flatten(ref(*build()))
        assert len(got) == len(expected)
        for name, a, b in zip(("output", "h_n", "c_n"), got, expected):
            assert not a.requires_grad, name
            torch.testing.assert_close(a, b, msg=lambda m: f"{context.__name__} {name}: {m}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_loss_on_one_output(cell, backend):
    """A loss on the output alone or on one final state alone: the other outputs' gradients reach the layers
    undefined (the cpu layer node does not have them zero-filled), and each layer stands in zeros for them."""
    ref, fast = twins(cell, backend=backend, num_layers=2, bidirectional=True)
    build, leaves = make_input("packed_unsorted", ref)
    ref_out, fast_out = flatten(ref(*build())), flatten(fast(*build()))
    for name, a, b in zip(("output", "h_n", "c_n"), fast_out, ref_out):
        want = torch.autograd.grad(b.sum(), leaves + list(ref.parameters()), retain_graph=True)
        got = torch.autograd.grad(a.sum(), leaves + list(fast.parameters()), retain_graph=True)
        for x, y in zip(got, want):
            torch.testing.assert_close(x, y, msg=lambda m: f"loss on {name}: {m}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [1, 2])
def test_relu_keeps_nan(T, backend):
    """A NaN pre-activation stays NaN through ReLU, as in torch.relu (max(x, 0) can give 0 on a GPU). One
    unit's NaN bias: that unit at the first step, every unit from the second (W_hh spreads it)."""
    ref, fast = twins("rnn_relu", backend=backend)
    with torch.no_grad():
        for m in (ref, fast):
            m.bias_ih_l0[1] = float("nan")
    x = torch.randn(T, 3, 4, generator=torch.Generator().manual_seed(0))
    got, want = fast(x)[0], ref(x)[0]
    assert torch.isnan(want[0, :, 1]).all() and not torch.isnan(want[0, :, [0, 2, 3, 4]]).any()
    torch.testing.assert_close(got, want, equal_nan=True)
