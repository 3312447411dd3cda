"""The plain-PyTorch time loop: the oracle every backend is tested against, and the ``torch`` backend.

Each function is one layer, one direction, the recurrence only, with exactly the semantics of
the ``fastrnn::*_forward`` ops (see ``csrc/registration.cpp``) and the same return values, saved
activations included. Autograd through these loops is the reference backward. Steps are taken
with ``unbind``/``split`` (never ``xw[t]``) so the backward stays O(T).
"""
from __future__ import annotations

import torch
from torch import Tensor


def _steps(xw: Tensor, batch_sizes: Tensor | None, reverse: bool) -> list[tuple[int, Tensor]]:
    """(index, xw rows of the step) in processing order."""
    xs = xw.unbind(0) if batch_sizes is None else xw.split(batch_sizes.tolist())
    order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    return [(t, xs[t]) for t in order]


def _update(state: Tensor, rows: Tensor) -> Tensor:
    """Running state with its first rows.shape[0] rows replaced (packed steps touch a prefix)."""
    n = rows.shape[0]
    return rows if n == state.shape[0] else torch.cat([rows, state[n:]])


def _gather(outs: list[Tensor | None], batch_sizes: Tensor | None) -> Tensor:
    return torch.stack(outs) if batch_sizes is None else torch.cat(outs)


def _rnn(act, xw, w_hh, h0, batch_sizes, reverse):
    h = h0
    steps = _steps(xw, batch_sizes, reverse)
    outs: list[Tensor | None] = [None] * len(steps)
    for t, x in steps:
        n = x.shape[0]
        ht = act(torch.addmm(x, h[:n], w_hh.t()))
        outs[t] = ht
        h = _update(h, ht)
    return _gather(outs, batch_sizes), h


def rnn_tanh_forward(xw, w_hh, h0, batch_sizes=None, reverse=False):
    return _rnn(torch.tanh, xw, w_hh, h0, batch_sizes, reverse)


def rnn_relu_forward(xw, w_hh, h0, batch_sizes=None, reverse=False):
    return _rnn(torch.relu, xw, w_hh, h0, batch_sizes, reverse)


def lstm_forward(xw, w_hh, w_hr, h0, c0, batch_sizes=None, reverse=False):
    h, c = h0, c0
    steps = _steps(xw, batch_sizes, reverse)
    outs: list[Tensor | None] = [None] * len(steps)
    gates: list[Tensor | None] = [None] * len(steps)
    cells: list[Tensor | None] = [None] * len(steps)
    for t, x in steps:
        n = x.shape[0]
        pi, pf, pg, po = torch.addmm(x, h[:n], w_hh.t()).chunk(4, 1)
        i, f, g, o = pi.sigmoid(), pf.sigmoid(), pg.tanh(), po.sigmoid()
        ct = f * c[:n] + i * g
        ht = o * ct.tanh()
        if w_hr is not None:
            ht = ht @ w_hr.t()
        outs[t], gates[t], cells[t] = ht, torch.cat([i, f, g, o], 1), ct
        h, c = _update(h, ht), _update(c, ct)
    return (_gather(outs, batch_sizes), h, c, _gather(gates, batch_sizes),
            _gather(cells, batch_sizes))


def gru_forward(xw, w_hh, b_hn, h0, batch_sizes=None, reverse=False):
    h = h0
    H = h0.shape[-1]
    steps = _steps(xw, batch_sizes, reverse)
    outs: list[Tensor | None] = [None] * len(steps)
    work: list[Tensor | None] = [None] * len(steps)
    for t, x in steps:
        n_rows = x.shape[0]
        hp = h[:n_rows]
        gh = hp @ w_hh.t()
        xr, xz, xn = x.split(H, 1)
        hr, hz, hn = gh.split(H, 1)
        if b_hn is not None:
            hn = hn + b_hn
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        ht = (1 - z) * n + z * hp
        outs[t], work[t] = ht, torch.cat([r, z, n, hn], 1)
        h = _update(h, ht)
    return _gather(outs, batch_sizes), h, _gather(work, batch_sizes)
