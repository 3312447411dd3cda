"""torch.autocast: the layers compute in the autocast dtype like torch.nn's, and gradients reach the
float32 parameters. Values follow the tolerance rule against a float64 torch.nn."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import fastrnn
from _models import flatten, twins
from tolerance import assert_close_rule

BACKENDS = [pytest.param(("torch", "cpu"), id="torch")] + [
    pytest.param((p.values[0][0].value, p.values[0][1]), id=p.id, marks=p.marks)
    for p in __import__("conftest").FUSED]
FAMILIES = ("rnn_tanh", "lstm", "lstm_proj", "gru")


def _autocast_dtypes(device: str):
    return (torch.bfloat16,) if device == "cpu" else (torch.float16, torch.bfloat16)


def _cases():
    return [pytest.param(b.values[0], dtype, id=f"{b.id}-{str(dtype)[6:]}", marks=b.marks)
            for b in BACKENDS for dtype in _autocast_dtypes(b.values[0][1])]


def _torch_nn_keeps_dtype(cell: str, device: str, native: bool) -> bool:
    """Whether torch.nn returns the autocast dtype. cuDNN does, and so does oneDNN's LSTM; on CPU torch.nn's
    unfused GRU and LSTM decompositions (``native``: ATen's own, for an LSTM that oneDNN cannot run)
    carry float32 state and return float32 (fastrnn returns the autocast dtype everywhere, as on CUDA)."""
    return device == "cuda" or cell == "rnn_tanh" or (cell == "lstm" and not native)


def _torch_nn(module: nn.Module, x, state) -> tuple[tuple, bool]:
    """torch.nn's outputs, and whether it ran ATen's decomposition rather than oneDNN's LSTM. oneDNN
    builds no bfloat16 LSTM on CPUs without AVX-512 (on an AVX2 AMD EPYC: "could not create a primitive
    descriptor"); there torch.nn runs with oneDNN off, as its users would have to."""
    try:
        return flatten(module(x, state)), False
    except RuntimeError as e:
        if "primitive descriptor" not in str(e):
            raise
    with torch.backends.mkldnn.flags(enabled=False):
        return flatten(module(x, state)), True


@pytest.mark.parametrize("backend_device,dtype", _cases())
@pytest.mark.parametrize("cell", FAMILIES)
def test_layer_under_autocast(cell, backend_device, dtype):
    backend, device = backend_device
    ref, fast = twins(cell, backend=backend, num_layers=2, input_size=6, hidden=12)
    ref, fast = ref.to(device), fast.to(device)
    ref64, ref_low = copy.deepcopy(ref).double(), copy.deepcopy(ref).to(dtype)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 3, 6, generator=g).to(device)
    hx = torch.randn(2, 3, ref.proj_size or 12, generator=g).to(device)  # float32 state, cast by autocast
    state = (hx, torch.randn(2, 3, 12, generator=g).to(device)) if "lstm" in cell else hx

    with torch.autocast(device, dtype=dtype):
        got = flatten(fast(x, state))
        nn_out, native = _torch_nn(ref, x, state)
    low = flatten(ref_low(x.to(dtype), tuple(s.to(dtype) for s in state) if "lstm" in cell else state.to(dtype)))
    exact = flatten(ref64(x.double(), tuple(s.double() for s in state) if "lstm" in cell else state.double()))

    for name, a, b in zip(("output", "h_n", "c_n"), got, nn_out):
        assert a.dtype == dtype, name
        if _torch_nn_keeps_dtype(cell, device, native):
            assert b.dtype == a.dtype, name
    for name, a, b, e in zip(("output", "h_n", "c_n"), got, nn_out, exact):
        assert_close_rule(a, e, b.to(dtype), name=name)

    params = list(fast.parameters())
    grads = torch.autograd.grad(sum(t.float().sum() for t in got), params)
    assert all(p.dtype == torch.float32 and gr.dtype == torch.float32 for p, gr in zip(params, grads))
    exact_grads = torch.autograd.grad(sum(t.sum() for t in exact), list(ref64.parameters()))
    if backend == "torch":  # reference.py itself: its own bf16 autograd is the same-dtype reference
        assert all(gr.isfinite().all() for gr in grads)
        return
    low_grads = torch.autograd.grad(sum(t.float().sum() for t in low), list(ref_low.parameters()))
    for (name, _), a, b, e in zip(fast.named_parameters(), grads, low_grads, exact_grads):
        assert_close_rule(a.to(dtype), e, b, name=f"grad {name}")


@pytest.mark.parametrize("backend_device", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_cell_under_autocast(cell, backend_device):
    backend, device = backend_device
    torch_cls, fast_cls, extra = {"rnn_tanh": (nn.RNNCell, fastrnn.RNNCell, {"nonlinearity": "tanh"}),
                                  "lstm": (nn.LSTMCell, fastrnn.LSTMCell, {}),
                                  "gru": (nn.GRUCell, fastrnn.GRUCell, {})}[cell]
    torch.manual_seed(0)
    ref = torch_cls(6, 10, **extra).to(device)
    fast = fast_cls(6, 10, backend=backend, **extra).to(device)
    fast.load_state_dict(ref.state_dict())
    dtype = _autocast_dtypes(device)[0]
    x = torch.randn(4, 6, device=device)
    with torch.autocast(device, dtype=dtype):
        got = fast(x)
    got = got if isinstance(got, tuple) else (got,)
    low = copy.deepcopy(ref).to(dtype)(x.to(dtype))
    exact = copy.deepcopy(ref).double()(x.double())
    for a, b, e in zip(got, low if isinstance(low, tuple) else (low,), exact if isinstance(exact, tuple) else (exact,)):
        assert a.dtype == dtype
        assert_close_rule(a, e, b)
    sum(t.float().sum() for t in got).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in fast.parameters())


def test_autocast_off_keeps_float32_and_mixed_dtypes_still_raise():
    _, fast = twins("gru")
    x = torch.randn(3, 2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert fast(x)[0].dtype == torch.float32
    with pytest.raises(ValueError, match="dtype"):
        fast(x.bfloat16())

