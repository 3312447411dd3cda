"""The Triton backend's ops: the schemas of ``csrc/registration.cpp``, as ``fastrnn_triton::*``.

Each op is a ``torch.library.triton_op``: torch.compile traces through it to the wrapped
kernels, and the same function (which reads no tensor data on the host) is its fake kernel.
The step or sequence kernel is picked by ``schedule.kernel_kind``; the weight gradients are one
GEMM each after the time loop, in the accumulation type.
"""
from typing import Optional

import torch
import triton
from torch import Tensor
from torch.library import triton_op, wrap_triton

from . import cells, schedule, sequence, step
from .schedule import Schedule

_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(xw: Tensor, w_hh: Tensor, h0: Tensor, batch_sizes: Optional[Tensor], gates: int,
           w_hr: Optional[Tensor] = None, c0: Optional[Tensor] = None, b_hn: Optional[Tensor] = None,
           blocks: Optional[int] = None, name: str = "xw") -> tuple[int, int]:
    """ValueError naming the argument unless the shapes and dtypes fit the schema; -> (H, P).

    ``xw`` is the sequence-shaped tensor checked, ``name`` its argument name and ``blocks`` its
    last dimension in units of H (default: the gate count)."""
    blocks = gates if blocks is None else blocks
    if xw.dtype not in _DTYPES:
        raise ValueError(f"fastrnn triton: {name} has dtype {xw.dtype}; expected float16, bfloat16, float32 or float64")
    if w_hh.dim() != 2 or w_hh.shape[0] % gates:
        raise ValueError(f"fastrnn triton: w_hh must be [{gates}*H, P], got {tuple(w_hh.shape)}")
    H, P = w_hh.shape[0] // gates, w_hh.shape[1]
    if w_hr is None and P != H:
        raise ValueError(f"fastrnn triton: w_hh must be [{gates}*H, H] without w_hr, got {tuple(w_hh.shape)}")
    if w_hr is not None and tuple(w_hr.shape) != (P, H):
        raise ValueError(f"fastrnn triton: w_hr must be [{P}, {H}], got {tuple(w_hr.shape)}")
    if batch_sizes is not None:
        if batch_sizes.dim() != 1 or batch_sizes.dtype != torch.int64 or batch_sizes.device.type != "cpu":
            raise ValueError("fastrnn triton: batch_sizes must be a 1-D int64 CPU tensor")
        if xw.dim() != 2:
            raise ValueError(f"fastrnn triton: packed {name} must be [N, {blocks * H}], got {tuple(xw.shape)}")
    elif xw.dim() != 3:
        raise ValueError(f"fastrnn triton: {name} must be [T, B, {blocks * H}], got {tuple(xw.shape)}")
    if xw.shape[-1] != blocks * H:
        raise ValueError(f"fastrnn triton: {name}'s last dimension must be {blocks}*H = {blocks * H}, got {xw.shape[-1]}")
    B = h0.shape[0] if h0.dim() == 2 else -1
    if h0.dim() != 2 or h0.shape[1] != P or (batch_sizes is None and xw.shape[1] != B):
        raise ValueError(f"fastrnn triton: h0 must be [B, {P}], got {tuple(h0.shape)}")
    if c0 is not None and tuple(c0.shape) != (B, H):
        raise ValueError(f"fastrnn triton: c0 must be [{B}, {H}], got {tuple(c0.shape)}")
    if b_hn is not None and tuple(b_hn.shape) != (H,):
        raise ValueError(f"fastrnn triton: b_hn must be [{H}], got {tuple(b_hn.shape)}")
    name_x = name
    for name, t in (("w_hh", w_hh), ("h0", h0), ("w_hr", w_hr), ("c0", c0), ("b_hn", b_hn)):
        if t is not None and (t.dtype != xw.dtype or t.device != xw.device):
            raise ValueError(f"fastrnn triton: {name} is {t.dtype} on {t.device}, {name_x} is {xw.dtype} on {xw.device}")
    return H, P


def _check_grads(pairs: tuple[tuple[str, Tensor, Tensor], ...]) -> None:
    for name, g, like in pairs:
        if g.shape != like.shape or g.dtype != like.dtype or g.device != like.device:
            raise ValueError(f"fastrnn triton: {name} must be {like.dtype} {tuple(like.shape)} on {like.device}, "
                             f"got {g.dtype} {tuple(g.shape)} on {g.device}")


def _grid_step(s: Schedule, width: int, block: int) -> tuple[int, int]:
    return (triton.cdiv(s.B, 16), triton.cdiv(width, block))


def _flags(dtype: torch.dtype) -> dict:
    return {"ACC": schedule.acc_dtype(dtype)[1], "UPCAST": schedule.interpreted()}


def _weight_grad(dg: Tensor, s: Schedule, output: Tensor, h0: Tensor, reverse: bool) -> Tensor:
    """dW_hh = dgates^T @ h_{t-1} over all rows: one GEMM in the accumulation type."""
    h_prev = torch.cat([s.flat(output), h0]).index_select(0, s.prev_index(reverse, dg.device))
    return torch.mm(dg.t(), h_prev.to(dg.dtype)).to(output.dtype)


# ---- tanh / ReLU RNN -------------------------------------------------------------------------------

def _rnn_forward(act: int, xw, w_hh, h0, batch_sizes, reverse):
    H, _ = _check(xw, w_hh, h0, batch_sizes, 1)
    s = Schedule(xw, batch_sizes, h0.shape[0])
    x, w, h0 = s.flat(xw), w_hh.contiguous(), h0.contiguous()
    out = torch.empty(s.N, H, dtype=xw.dtype, device=xw.device)
    h_n = h0.clone()
    if schedule.kernel_kind(1, H, H, xw.dtype) == "sequence":
        wrap_triton(sequence.rnn_seq_forward)[(triton.cdiv(s.B, 16),)](
            x, w, h0, out, h_n, s.bs, s.off, s.T, s.B, H, ACT=act, REVERSE=reverse, **_flags(xw.dtype),
            **schedule.seq_tiles(H, H))
    else:
        tiles = schedule.tiles(H, H)
        for t, tp, has in s.order(reverse):
            wrap_triton(step.rnn_step_forward)[_grid_step(s, H, tiles["BH"])](
                x, w, h0, out, h_n, s.bs, s.off, t, tp, has, H, ACT=act, **_flags(xw.dtype), **tiles)
    return s.unflat(out), h_n


def _rnn_backward(act: int, grad_output, grad_h_n, w_hh, h0, output, batch_sizes, reverse):
    H, _ = _check(output, w_hh, h0, batch_sizes, 1, name="output")
    _check_grads((("grad_output", grad_output, output), ("grad_h_n", grad_h_n, h0)))
    s = Schedule(output, batch_sizes, h0.shape[0])
    acc = schedule.acc_dtype(output.dtype)[0]
    gout, out, w, h0 = s.flat(grad_output), s.flat(output), w_hh.contiguous(), h0.contiguous()
    dg = torch.empty(s.N, H, dtype=acc, device=out.device)
    gxw = torch.empty(s.N, H, dtype=out.dtype, device=out.device)
    if schedule.kernel_kind(1, H, H, out.dtype) == "sequence":
        gh0 = torch.empty_like(h0)
        wrap_triton(sequence.rnn_seq_backward)[(triton.cdiv(s.B, 16),)](
            gout, grad_h_n.contiguous(), w, out, dg, gxw, gh0, s.bs, s.off, s.T, s.B, H, ACT=act, REVERSE=reverse,
            **_flags(out.dtype), **schedule.seq_tiles(H, H))
    else:
        dstate = grad_h_n.to(acc, copy=True)
        tiles = schedule.tiles(H, H)
        for t, _, _ in s.order(reverse, backward=True):
            wrap_triton(step.rnn_step_backward)[_grid_step(s, H, tiles["BH"])](
                gout, out, dstate, dg, gxw, s.bs, s.off, t, H, ACT=act, ACC=schedule.acc_dtype(out.dtype)[1],
                BB=tiles["BB"], BH=tiles["BH"])
            _dstate_update(s, t, dg, w, dstate, H, H, accumulate=False)
        gh0 = dstate.to(out.dtype)
    return s.unflat(gxw), _weight_grad(dg, s, output, h0, reverse), gh0


def _dstate_update(s: Schedule, t: int, dg: Tensor, w: Tensor, dstate: Tensor, G_H: int, P: int, accumulate: bool):
    """dH[rows of step t] (+)= dgates[step t] @ W_hh."""
    tiles = schedule.tiles(P, G_H)
    wrap_triton(step.rows_matmul)[_grid_step(s, P, tiles["BH"])](
        dg, dg, dg, w, dstate, dstate, s.bs, s.off, t, G_H, P, P, 1,
        A_AT_OFF=True, ADD_A2=False, SAVE_A=False, C_AT_OFF=False, ACCUMULATE=accumulate, HAS_C2=False,
        **_flags(w.dtype), BB=tiles["BB"], BN=tiles["BH"], BK=tiles["BK"])


@triton_op("fastrnn_triton::rnn_tanh_forward", mutates_args=())
def rnn_tanh_forward(xw: Tensor, w_hh: Tensor, h0: Tensor, batch_sizes: Optional[Tensor],
                     reverse: bool) -> tuple[Tensor, Tensor]:
    return _rnn_forward(cells.TANH, xw, w_hh, h0, batch_sizes, reverse)


@triton_op("fastrnn_triton::rnn_relu_forward", mutates_args=())
def rnn_relu_forward(xw: Tensor, w_hh: Tensor, h0: Tensor, batch_sizes: Optional[Tensor],
                     reverse: bool) -> tuple[Tensor, Tensor]:
    return _rnn_forward(cells.RELU, xw, w_hh, h0, batch_sizes, reverse)


@triton_op("fastrnn_triton::rnn_tanh_backward", mutates_args=())
def rnn_tanh_backward(grad_output: Tensor, grad_h_n: Tensor, w_hh: Tensor, h0: Tensor, output: Tensor,
                      batch_sizes: Optional[Tensor], reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    return _rnn_backward(cells.TANH, grad_output, grad_h_n, w_hh, h0, output, batch_sizes, reverse)


@triton_op("fastrnn_triton::rnn_relu_backward", mutates_args=())
def rnn_relu_backward(grad_output: Tensor, grad_h_n: Tensor, w_hh: Tensor, h0: Tensor, output: Tensor,
                      batch_sizes: Optional[Tensor], reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    return _rnn_backward(cells.RELU, grad_output, grad_h_n, w_hh, h0, output, batch_sizes, reverse)


# ---- LSTM ------------------------------------------------------------------------------------------

@triton_op("fastrnn_triton::lstm_forward", mutates_args=())
def lstm_forward(xw: Tensor, w_hh: Tensor, w_hr: Optional[Tensor], h0: Tensor, c0: Tensor,
                 batch_sizes: Optional[Tensor], reverse: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    H, P = _check(xw, w_hh, h0, batch_sizes, 4, w_hr=w_hr, c0=c0)
    s = Schedule(xw, batch_sizes, h0.shape[0])
    x, w, h0, c0 = s.flat(xw), w_hh.contiguous(), h0.contiguous(), c0.contiguous()
    whr = w if w_hr is None else w_hr.contiguous()
    new = dict(dtype=xw.dtype, device=xw.device)
    out, gates, cells_ = torch.empty(s.N, P, **new), torch.empty(s.N, 4 * H, **new), torch.empty(s.N, H, **new)
    h_n, c_n = h0.clone(), c0.clone()
    proj = w_hr is not None
    if schedule.kernel_kind(4, H, P, xw.dtype) == "sequence":
        wrap_triton(sequence.lstm_seq_forward)[(triton.cdiv(s.B, 16),)](
            x, w, whr, h0, c0, out, h_n, c_n, gates, cells_, s.bs, s.off, s.T, s.B, H, P, PROJ=proj, REVERSE=reverse,
            **_flags(xw.dtype), **schedule.seq_tiles(H, P))
    else:
        tiles = schedule.tiles(H, P)
        hraw = torch.empty(s.B, H, **new) if proj else out
        ptiles = schedule.tiles(P, H)
        for t, tp, has in s.order(reverse):
            wrap_triton(step.lstm_step_forward)[_grid_step(s, H, tiles["BH"])](
                x, w, h0, c0, out, hraw, h_n, c_n, gates, cells_, s.bs, s.off, t, tp, has, H, P, PROJ=proj,
                **_flags(xw.dtype), **tiles)
            if proj:  # output[t] = h_raw @ w_hr^T, also into h_n
                wrap_triton(step.rows_matmul)[_grid_step(s, P, ptiles["BH"])](
                    hraw, hraw, hraw, whr, out, h_n, s.bs, s.off, t, H, P, 1, H,
                    A_AT_OFF=False, ADD_A2=False, SAVE_A=False, C_AT_OFF=True, ACCUMULATE=False, HAS_C2=True,
                    **_flags(xw.dtype), BB=16, BN=ptiles["BH"], BK=ptiles["BK"])
    return s.unflat(out), h_n, c_n, s.unflat(gates), s.unflat(cells_)


@triton_op("fastrnn_triton::lstm_backward", mutates_args=())
def lstm_backward(grad_output: Tensor, grad_h_n: Tensor, grad_c_n: Tensor, w_hh: Tensor, w_hr: Optional[Tensor],
                  h0: Tensor, c0: Tensor, output: Tensor, gates: Tensor, cells: Tensor, batch_sizes: Optional[Tensor],
                  reverse: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    H, P = _check(gates, w_hh, h0, batch_sizes, 4, w_hr=w_hr, c0=c0, name="gates")
    _check_grads((("grad_output", grad_output, output), ("grad_h_n", grad_h_n, h0), ("grad_c_n", grad_c_n, c0)))
    s = Schedule(gates, batch_sizes, h0.shape[0])
    acc, acc_tl = schedule.acc_dtype(output.dtype)
    dtype, dev = output.dtype, output.device
    gout, w, h0, c0 = s.flat(grad_output), w_hh.contiguous(), h0.contiguous(), c0.contiguous()
    gts, cls = s.flat(gates), s.flat(cells)
    proj = w_hr is not None
    whr = w if w_hr is None else w_hr.contiguous()
    dg = torch.empty(s.N, 4 * H, dtype=acc, device=dev)
    gxw = torch.empty(s.N, 4 * H, dtype=dtype, device=dev)
    dhp = torch.empty(s.N, P, dtype=acc, device=dev) if proj else dg
    if schedule.kernel_kind(4, H, P, dtype) == "sequence":
        gh0, gc0 = torch.empty_like(h0), torch.empty_like(c0)
        wrap_triton(sequence.lstm_seq_backward)[(triton.cdiv(s.B, 16),)](
            gout, grad_h_n.contiguous(), grad_c_n.contiguous(), w, whr, c0, gts, cls, dg, gxw, dhp, gh0, gc0,
            s.bs, s.off, s.T, s.B, H, P, PROJ=proj, REVERSE=reverse, **_flags(dtype), **schedule.seq_tiles(H, P))
    else:
        dstate, dc = grad_h_n.to(acc, copy=True), grad_c_n.to(acc, copy=True)
        dhraw = torch.empty(s.B, H, dtype=acc, device=dev) if proj else dstate
        tiles = schedule.tiles(H, P)
        rtiles = schedule.tiles(H, P)
        for t, tp, has in s.order(reverse, backward=True):
            if proj:  # dhp[t] = grad_output[t] + dH; dh_raw = dhp[t] @ w_hr
                wrap_triton(step.rows_matmul)[_grid_step(s, H, rtiles["BH"])](
                    gout, dstate, dhp, whr, dhraw, dhraw, s.bs, s.off, t, P, H, H, 1,
                    A_AT_OFF=True, ADD_A2=True, SAVE_A=True, C_AT_OFF=False, ACCUMULATE=False, HAS_C2=False,
                    **_flags(dtype), BB=16, BN=rtiles["BH"], BK=rtiles["BK"])
            wrap_triton(step.lstm_step_backward)[_grid_step(s, H, tiles["BH"])](
                gout, dhraw, dstate, dc, gts, cls, c0, dg, gxw, s.bs, s.off, t, tp, has, H, PROJ=proj, ACC=acc_tl,
                BB=tiles["BB"], BH=tiles["BH"])
            _dstate_update(s, t, dg, w, dstate, 4 * H, P, accumulate=False)
        gh0, gc0 = dstate.to(dtype), dc.to(dtype)
    if proj:
        h_raw = gts[:, 3 * H:].to(acc) * torch.tanh(cls.to(acc))
        grad_w_hr = torch.mm(dhp.t(), h_raw).to(dtype)
    else:
        grad_w_hr = torch.zeros(0, dtype=dtype, device=dev)
    return s.unflat(gxw), _weight_grad(dg, s, output, h0, reverse), grad_w_hr, gh0, gc0


# ---- GRU -------------------------------------------------------------------------------------------

@triton_op("fastrnn_triton::gru_forward", mutates_args=())
def gru_forward(xw: Tensor, w_hh: Tensor, b_hn: Optional[Tensor], h0: Tensor, batch_sizes: Optional[Tensor],
                reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    H, _ = _check(xw, w_hh, h0, batch_sizes, 3, b_hn=b_hn)
    s = Schedule(xw, batch_sizes, h0.shape[0])
    x, w, h0 = s.flat(xw), w_hh.contiguous(), h0.contiguous()
    bhn = w if b_hn is None else b_hn.contiguous()
    new = dict(dtype=xw.dtype, device=xw.device)
    out, ws = torch.empty(s.N, H, **new), torch.empty(s.N, 4 * H, **new)
    h_n = h0.clone()
    if schedule.kernel_kind(3, H, H, xw.dtype) == "sequence":
        wrap_triton(sequence.gru_seq_forward)[(triton.cdiv(s.B, 16),)](
            x, w, bhn, h0, out, h_n, ws, s.bs, s.off, s.T, s.B, H, HAS_BHN=b_hn is not None, REVERSE=reverse,
            **_flags(xw.dtype), **schedule.seq_tiles(H, H))
    else:
        tiles = schedule.tiles(H, H)
        for t, tp, has in s.order(reverse):
            wrap_triton(step.gru_step_forward)[_grid_step(s, H, tiles["BH"])](
                x, w, bhn, h0, out, h_n, ws, s.bs, s.off, t, tp, has, H, HAS_BHN=b_hn is not None,
                **_flags(xw.dtype), **tiles)
    return s.unflat(out), h_n, s.unflat(ws)


@triton_op("fastrnn_triton::gru_backward", mutates_args=())
def gru_backward(grad_output: Tensor, grad_h_n: Tensor, w_hh: Tensor, b_hn: Optional[Tensor], h0: Tensor,
                 output: Tensor, workspace: Tensor, batch_sizes: Optional[Tensor],
                 reverse: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    H, _ = _check(workspace, w_hh, h0, batch_sizes, 3, b_hn=b_hn, blocks=4, name="workspace")
    _check_grads((("grad_output", grad_output, output), ("grad_h_n", grad_h_n, h0)))
    s = Schedule(output, batch_sizes, h0.shape[0])
    acc, acc_tl = schedule.acc_dtype(output.dtype)
    dtype, dev = output.dtype, output.device
    gout, out, w, h0, ws = s.flat(grad_output), s.flat(output), w_hh.contiguous(), h0.contiguous(), s.flat(workspace)
    dg = torch.empty(s.N, 3 * H, dtype=acc, device=dev)
    gxw = torch.empty(s.N, 3 * H, dtype=dtype, device=dev)
    if schedule.kernel_kind(3, H, H, dtype) == "sequence":
        gh0 = torch.empty_like(h0)
        wrap_triton(sequence.gru_seq_backward)[(triton.cdiv(s.B, 16),)](
            gout, grad_h_n.contiguous(), w, h0, out, ws, dg, gxw, gh0, s.bs, s.off, s.T, s.B, H,
            REVERSE=reverse, **_flags(dtype), **schedule.seq_tiles(H, H))
    else:
        dstate = grad_h_n.to(acc, copy=True)
        tiles = schedule.tiles(H, H)
        for t, tp, has in s.order(reverse, backward=True):
            wrap_triton(step.gru_step_backward)[_grid_step(s, H, tiles["BH"])](
                gout, out, h0, ws, dstate, dg, gxw, s.bs, s.off, t, tp, has, H, ACC=acc_tl,
                BB=tiles["BB"], BH=tiles["BH"])
            _dstate_update(s, t, dg, w, dstate, 3 * H, H, accumulate=True)
        gh0 = dstate.to(dtype)
    grad_b_hn = dg[:, 2 * H:].sum(0).to(dtype)
    return s.unflat(gxw), _weight_grad(dg, s, output, h0, reverse), grad_b_hn, gh0
