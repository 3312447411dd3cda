"""Every check torch.nn makes, with the same exception type, raised before any kernel runs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import fastrnn
from fastrnn import _ext

needs_cpu = pytest.mark.skipif(not _ext.has_cpu(), reason="fastrnn._C is not built")

CASES = {
    # name: (call on a (module) returning the forward's arguments, expected exception, message pattern)
    "input-rank-4": (lambda m: (torch.randn(2, 3, 4, 1),), ValueError, "Expected input to be 2D or 3D"),
    "input-rank-1": (lambda m: (torch.randn(4),), ValueError, "Expected input to be 2D or 3D"),
    "feature-size": (lambda m: (torch.randn(2, 3, 5),), RuntimeError, "input_size. Expected 4, got 5"),
    "seq-len-0": (lambda m: (torch.randn(0, 3, 4),), RuntimeError, "sequence length"),
    "input-dtype": (lambda m: (torch.randn(2, 3, 4, dtype=torch.float64),), ValueError, "does not match weight dtype"),
    "hx-rank-batched": (lambda m: (torch.randn(2, 3, 4), _hx(m, (3, 5))), RuntimeError, "should also be 3-D"),
    "hx-rank-unbatched": (lambda m: (torch.randn(2, 4), _hx(m, (1, 3, 5))), RuntimeError, "should also be 2-D"),
    "hx-shape": (lambda m: (torch.randn(2, 3, 4), _hx(m, (1, 2, 5))), RuntimeError, r"Expected hidden.* size"),
    "hx-dtype": (lambda m: (torch.randn(2, 3, 4), _hx(m, (1, 3, 5), torch.float64)), (ValueError, RuntimeError),
                 "dtype"),
    "hx-device": (lambda m: (torch.randn(2, 3, 4), _hx(m, (1, 3, 5), device="meta")), RuntimeError, "meta"),
    "packed-hx-batch": (lambda m: (_packed(), _hx(m, (1, 2, 5))), RuntimeError, r"Expected hidden.* size"),
    "packed-feature-size": (lambda m: (_packed(5),), RuntimeError, "input_size. Expected 4, got 5"),
    "packed-data-rank": (lambda m: (nn.utils.rnn.PackedSequence(torch.randn(6, 1, 4), torch.tensor([3, 2, 1])),),
                         RuntimeError, "input must have 2 dimensions"),
}


def _packed(features=4):
    """A PackedSequence of 3 sequences (lengths 3, 2, 1)."""
    return nn.utils.rnn.pack_sequence([torch.randn(n, features) for n in (3, 2, 1)])


def _hx(m, shape, dtype=torch.float32, device="cpu"):
    h = torch.zeros(shape, dtype=dtype, device=device)
    return (h, h) if isinstance(m, (nn.LSTM, fastrnn.LSTM)) else h


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_same_exception_as_torch(cls, case):
    make_args, exc, pattern = CASES[case]
    fast = getattr(fastrnn, cls)(4, 5)
    with pytest.raises(exc, match=pattern):
        fast(*make_args(fast))
    if case not in ("hx-device", "hx-dtype"):  # torch.nn fails later, with other messages, on these two
        ref = getattr(nn, cls)(4, 5)
        with pytest.raises(exc):
            ref(*make_args(ref))


def _raised(call) -> tuple[type, str] | None:
    try:
        call()
    except Exception as e:  # noqa: BLE001  (any exception: the two paths must raise the same one)
        return type(e), str(e)
    return None


@needs_cpu
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_cpp_checks_match_python(cls, case):
    """The cpu backend checks in C++ (fastrnn::rnn, csrc/rnn.cpp) what functional.py checks for the others:
    the same exception type and message."""
    raised = []
    for backend in ("cpu", "torch"):
        m = getattr(fastrnn, cls)(4, 5, backend=backend)
        args = CASES[case][0](m)
        raised.append(_raised(lambda: m(*args)))
    assert raised[0] is not None and raised[0] == raised[1]


def _weights(proj: bool = False, **bad):
    """A 2-layer bidirectional LSTM's flat weights (I=4, H=5), with the entries named in ``bad`` replaced."""
    m = nn.LSTM(4, 5, num_layers=2, bidirectional=True, proj_size=3 if proj else 0)
    return [bad.get(name, w) for name, w in zip(m._flat_weights_names, m._flat_weights)]


WEIGHT_CASES = {
    "count": lambda: _weights()[:-1],
    "per-layer": lambda: _weights()[:4] * 4 + [torch.randn(20)] * 8,
    "w_hh": lambda: _weights(weight_hh_l0=torch.randn(20, 4)),
    "w_hh-1d": lambda: _weights(weight_hh_l0=torch.randn(20)),
    "w_ih": lambda: _weights(weight_ih_l0=torch.randn(16, 4)),
    "upper-input": lambda: _weights(weight_ih_l1=torch.randn(20, 5)),
    "bias_ih": lambda: _weights(bias_ih_l0_reverse=torch.randn(21)),
    "bias_hh": lambda: _weights(bias_hh_l1=torch.randn(20, 1)),
    "w_hr": lambda: _weights(True, weight_hr_l1=torch.randn(3, 4)),
    "w_device": lambda: _weights(bias_hh_l1=torch.randn(20, device="meta")),
}


@needs_cpu
@pytest.mark.parametrize("case", WEIGHT_CASES)
def test_cpp_weight_checks_match_python(case):
    weights = WEIGHT_CASES[case]()
    x = torch.randn(2, 3, 4)
    raised = [_raised(lambda: fastrnn.functional.lstm(x, None, weights, True, 2, bidirectional=True, backend=b))
              for b in ("cpu", "torch")]
    assert raised[0] is not None and raised[0] == raised[1]


CELL_CASES = {
    # name: (input, the state given as state(h) with h its tensor, or None)
    "input-rank-3": (lambda state: (torch.randn(1, 2, 4), None)),
    "hx-rank-3": (lambda state: (torch.randn(2, 4), state(torch.zeros(1, 2, 5)))),
    "hx-batch": (lambda state: (torch.randn(2, 4), state(torch.zeros(3, 5)))),
    "hx-rank-for-batched": (lambda state: (torch.randn(2, 4), state(torch.zeros(5)))),
    "input-size": (lambda state: (torch.randn(2, 3), None)),
    "input-dtype": (lambda state: (torch.randn(2, 4, dtype=torch.float64), None)),
}


@needs_cpu
@pytest.mark.parametrize("case", CELL_CASES)
@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cpp_cell_checks_match_python(cls, case):
    state = (lambda h: (h, h)) if cls == "LSTMCell" else (lambda h: h)
    args = CELL_CASES[case](state)
    raised = [_raised(lambda: getattr(fastrnn, cls)(4, 5, backend=b)(*args)) for b in ("cpu", "torch")]
    assert raised[0] is not None and raised[0] == raised[1]


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_rank_checks(cls):
    m = getattr(fastrnn, cls)(4, 5)
    with pytest.raises(ValueError, match="Expected input to be 1D or 2D"):
        m(torch.randn(1, 2, 4))
    h = torch.zeros(1, 2, 5)
    with pytest.raises(ValueError, match="1D or 2D"):
        m(torch.randn(2, 4), (h, h) if cls == "LSTMCell" else h)


def test_constructor_checks_like_torch():
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        fastrnn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        fastrnn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="dropout should be a number"):
        fastrnn.LSTM(3, 4, dropout=1.5)


def test_functional_weight_checks():
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="tensors per layer"):
        fastrnn.functional.gru(x, None, [torch.randn(15, 4)] * 3)
    with pytest.raises(ValueError, match="weight_hh of layer-direction 0"):
        fastrnn.functional.lstm(x, None, [torch.randn(20, 4), torch.randn(19, 5)], bias=False)


def test_empty_batch_gives_empty_output_like_torch():
    out, h = fastrnn.GRU(4, 5)(torch.randn(2, 0, 4))
    assert out.shape == (2, 0, 5) and h.shape == (1, 0, 5)
