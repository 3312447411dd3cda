"""reference.py, the oracle, checked once against torch.nn (the module tests on the torch backend
cover every option); here the op-level semantics the fused backends must reproduce."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fastrnn import reference


def _graph_names(t: torch.Tensor) -> set[str]:
    seen, stack, names = set(), [t.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    return names


def test_backward_is_linear_in_time():
    """Stepping with unbind (not xw[t]) keeps the backward O(T): no per-step Select/Slice of xw."""
    xw = torch.randn(6, 2, 12, requires_grad=True)
    out = reference.lstm_forward(xw, torch.randn(12, 3), None, torch.zeros(2, 3), torch.zeros(2, 3))[0]
    names = _graph_names(out)
    assert "UnbindBackward0" in names and "SelectBackward0" not in names


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_packed_reverse_matches_torch_bidirectional(reverse):
    """The reverse pass of a packed sequence is what torch.nn's backward direction computes."""
    torch.manual_seed(0)
    ref = nn.GRU(3, 4, bidirectional=True)
    lengths = torch.tensor([4, 3, 1])
    x = torch.randn(4, 3, 3)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths)
    out, h_n = ref(packed)
    d = int(reverse)
    sfx = "_reverse" if reverse else ""
    w_ih, w_hh = getattr(ref, f"weight_ih_l0{sfx}"), getattr(ref, f"weight_hh_l0{sfx}")
    b_ih, b_hh = getattr(ref, f"bias_ih_l0{sfx}"), getattr(ref, f"bias_hh_l0{sfx}")
    bias = b_ih + torch.cat([b_hh[:8], torch.zeros(4)])
    xw = packed.data @ w_ih.t() + bias
    got, got_h, work = reference.gru_forward(xw, w_hh, b_hh[8:], torch.zeros(3, 4), packed.batch_sizes, reverse)
    torch.testing.assert_close(got, out.data[:, 4 * d:4 * d + 4])
    torch.testing.assert_close(got_h, h_n[d])
    assert work.shape == (xw.shape[0], 16)


def test_lstm_saved_activations():
    torch.manual_seed(0)
    xw, w_hh, w_hr = torch.randn(3, 2, 8), torch.randn(8, 1), torch.randn(1, 2)
    h0, c0 = torch.randn(2, 1), torch.randn(2, 2)
    out, h_n, c_n, gates, cells = reference.lstm_forward(xw, w_hh, w_hr, h0, c0)
    pre = xw[0] + h0 @ w_hh.t()
    i, f, g, o = pre.chunk(4, 1)
    torch.testing.assert_close(gates[0], torch.cat([i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()], 1))
    torch.testing.assert_close(cells[0], f.sigmoid() * c0 + i.sigmoid() * g.tanh())
    torch.testing.assert_close(out[0], (o.sigmoid() * cells[0].tanh()) @ w_hr.t())
    torch.testing.assert_close(h_n, out[-1])
    torch.testing.assert_close(c_n, cells[-1])
