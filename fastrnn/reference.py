"""The plain-PyTorch time loop: the oracle every backend is tested against, and the ``torch`` backend.

Each function is one layer, one direction, the recurrence only, with exactly the semantics of
the ``fastrnn::*_forward`` ops (see ``csrc/registration.cpp``) and the same return values, saved
activations included. Autograd through these loops is the reference backward. Steps are taken
with ``unbind`` (never ``xw[t]``) so the backward stays O(T).
"""
from __future__ import annotations

import torch
from torch import Tensor


class _Layout:
    """The T steps of a layer's rows, each as the [B, width] tile the state has.

    Unpacked rows are ``xw.unbind(0)``. Packed rows are gathered into padded [T, B] tiles, and step t
    updates only its rows r < batch_sizes[t] (``torch.where``); the padding computes values nobody
    reads. Everything is tensor indexing, with no Python branch on the data of batch_sizes, so
    torch.compile traces packed input without a graph break (B is an unbacked size there)."""

    def __init__(self, xw: Tensor, batch_sizes: Tensor | None, batch: int):
        self.packed = batch_sizes is not None
        if not self.packed:
            self.T = xw.shape[0]
            return
        dev, N = xw.device, xw.shape[0]
        bs = batch_sizes.to(dev)
        self.T = bs.shape[0]
        offsets = torch.cumsum(bs, 0) - bs
        r = torch.arange(batch, device=dev)
        self.mask = (r[None, :] < bs[:, None]).unsqueeze(-1)  # [T, B, 1]: rows of step t
        self.rows = (offsets[:, None] + r[None, :]).clamp(max=N - 1)  # [T, B]: packed row of (t, r), or padding
        t_of = torch.repeat_interleave(torch.arange(self.T, device=dev), bs, output_size=N)
        self.flat = t_of * batch + torch.arange(N, device=dev) - offsets[t_of]  # [N]: (t, r) of each packed row

    def steps(self, xw: Tensor) -> tuple[Tensor, ...]:
        return (xw[self.rows] if self.packed else xw).unbind(0)

    def order(self, reverse: bool) -> range:
        return range(self.T - 1, -1, -1) if reverse else range(self.T)

    def update(self, t: int, state: Tensor, new: Tensor) -> Tensor:
        """The running state after step t: new on the step's rows."""
        return torch.where(self.mask[t], new, state) if self.packed else new

    def gather(self, per_step: list[Tensor | None]) -> Tensor:
        """[T, B, width] tiles -> xw's layout ([T, B, width], or the packed [N, width])."""
        tiles = torch.stack(per_step)
        return tiles.flatten(0, 1)[self.flat] if self.packed else tiles


def _rnn(act, xw, w_hh, h0, batch_sizes, reverse):
    h = h0
    lay = _Layout(xw, batch_sizes, h0.shape[0])
    xs = lay.steps(xw)
    outs: list[Tensor | None] = [None] * lay.T
    for t in lay.order(reverse):
        ht = act(torch.addmm(xs[t], h, w_hh.t()))
        outs[t] = ht
        h = lay.update(t, h, ht)
    return lay.gather(outs), h


def rnn_tanh_forward(xw, w_hh, h0, batch_sizes=None, reverse=False):
    return _rnn(torch.tanh, xw, w_hh, h0, batch_sizes, reverse)


def rnn_relu_forward(xw, w_hh, h0, batch_sizes=None, reverse=False):
    return _rnn(torch.relu, xw, w_hh, h0, batch_sizes, reverse)


def lstm_forward(xw, w_hh, w_hr, h0, c0, batch_sizes=None, reverse=False):
    h, c = h0, c0
    lay = _Layout(xw, batch_sizes, h0.shape[0])
    xs = lay.steps(xw)
    outs: list[Tensor | None] = [None] * lay.T
    gates: list[Tensor | None] = [None] * lay.T
    cells: list[Tensor | None] = [None] * lay.T
    for t in lay.order(reverse):
        pi, pf, pg, po = torch.addmm(xs[t], h, w_hh.t()).chunk(4, 1)
        i, f, g, o = pi.sigmoid(), pf.sigmoid(), pg.tanh(), po.sigmoid()
        ct = f * c + i * g
        ht = o * ct.tanh()
        if w_hr is not None:
            ht = ht @ w_hr.t()
        outs[t], gates[t], cells[t] = ht, torch.cat([i, f, g, o], 1), ct
        h, c = lay.update(t, h, ht), lay.update(t, c, ct)
    return lay.gather(outs), h, c, lay.gather(gates), lay.gather(cells)


def gru_forward(xw, w_hh, b_hn, h0, batch_sizes=None, reverse=False):
    h = h0
    H = h0.shape[-1]
    lay = _Layout(xw, batch_sizes, h0.shape[0])
    xs = lay.steps(xw)
    outs: list[Tensor | None] = [None] * lay.T
    work: list[Tensor | None] = [None] * lay.T
    for t in lay.order(reverse):
        gh = h @ w_hh.t()
        xr, xz, xn = xs[t].split(H, 1)
        hr, hz, hn = gh.split(H, 1)
        if b_hn is not None:
            hn = hn + b_hn
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        ht = (1 - z) * n + z * h
        outs[t], work[t] = ht, torch.cat([r, z, n, hn], 1)
        h = lay.update(t, h, ht)
    return lay.gather(outs), h, lay.gather(work)
