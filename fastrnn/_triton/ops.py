"""The Triton backend's ops: the schemas of ``csrc/registration.cpp``, as ``fastrnn_triton::*``.

Each op is a ``torch.library.triton_op`` (an opaque ``custom_op`` under the interpreter, see
``_op``): torch.compile traces through it to the wrapped kernels, and the same function is its
fake kernel (it reads no tensor data on the host but, on real tensors, ``batch_sizes`` for the
argument checks of ``checks.py``).
The step or sequence kernel is picked by ``schedule.kernel_kind``; the weight gradients are one
GEMM each after the time loop, in the accumulation type.
"""
from typing import Optional

import torch
import triton
from torch import Tensor
from torch.library import triton_op, wrap_triton

from . import cells, schedule, sequence, step
from .checks import check_backward, check_forward
from .schedule import Schedule

class _NoLaunch:
    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def _launch(kernel):
    """``wrap_triton(kernel)``, but a no-op for the interpreter on fake tensors (opcheck, torch.compile's
    tracing): on a GPU wrap_triton traces the launch, the interpreter would run it on tensors without data."""
    if schedule.interpreted() and torch._guards.detect_fake_mode() is not None:
        return _NoLaunch()
    return wrap_triton(kernel)


def _op(name: str, mutates_args: tuple = ()):
    """``triton_op``: torch.compile traces into the kernels. Under the interpreter, whose kernels cannot be
    traced, an opaque ``custom_op`` instead, with the same function (launching nothing on fake tensors) as
    its fake implementation."""
    if not schedule.interpreted():
        return triton_op(name, mutates_args=mutates_args)

    def register(fn):
        op = torch.library.custom_op(name, fn, mutates_args=mutates_args)
        op.register_fake(fn)
        return op
    return register


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
    H = check_forward(f"rnn_{cells.ACT_NAMES[act]}_forward", 1, xw, w_hh, h0, batch_sizes).H
    s = Schedule(xw, batch_sizes, h0.shape[0])
    x, w, h0 = s.flat(xw), w_hh.contiguous(), h0.contiguous()
    out = torch.empty(s.N, H, dtype=xw.dtype, device=xw.device)
    h_n = h0.clone()
    if schedule.kernel_kind(1, H, H, xw.dtype) == "sequence":
        _launch(sequence.rnn_seq_forward)[(triton.cdiv(s.B, 16),)](
            x, w, h0, out, h_n, s.bs, s.off, s.T, s.B, H, ACT=act, REVERSE=reverse, **_flags(xw.dtype),
            **schedule.seq_tiles(H, H))
    else:
        tiles = schedule.tiles(H, H)
        for t, tp, has in s.order(reverse):
            _launch(step.rnn_step_forward)[_grid_step(s, H, tiles["BH"])](
                x, w, h0, out, h_n, s.bs, s.off, t, tp, has, H, ACT=act, **_flags(xw.dtype), **tiles)
    return s.unflat(out), h_n


def _rnn_backward(act: int, grad_output, grad_h_n, w_hh, h0, output, batch_sizes, reverse):
    H = check_backward(f"rnn_{cells.ACT_NAMES[act]}_backward", 1, grad_output, grad_h_n, w_hh, h0, output,
                       batch_sizes).H
    s = Schedule(output, batch_sizes, h0.shape[0])
    acc = schedule.acc_dtype(output.dtype)[0]
    gout, out, w, h0 = s.flat(grad_output), s.flat(output), w_hh.contiguous(), h0.contiguous()
    dg = torch.empty(s.N, H, dtype=acc, device=out.device)
    gxw = torch.empty(s.N, H, dtype=out.dtype, device=out.device)
    if schedule.kernel_kind(1, H, H, out.dtype) == "sequence":
        gh0 = torch.empty_like(h0)
        _launch(sequence.rnn_seq_backward)[(triton.cdiv(s.B, 16),)](
            gout, grad_h_n.contiguous(), w, out, dg, gxw, gh0, s.bs, s.off, s.T, s.B, H, ACT=act, REVERSE=reverse,
            **_flags(out.dtype), **schedule.seq_tiles(H, H))
    else:
        dstate = grad_h_n.to(acc, copy=True)
        tiles = schedule.tiles(H, H)
        for t, _, _ in s.order(reverse, backward=True):
            _launch(step.rnn_step_backward)[_grid_step(s, H, tiles["BH"])](
                gout, out, dstate, dg, gxw, s.bs, s.off, t, H, ACT=act, ACC=schedule.acc_dtype(out.dtype)[1],
                BB=tiles["BB"], BH=tiles["BH"])
            _dstate_update(s, t, dg, w, dstate, H, H, accumulate=False)
        gh0 = dstate.to(out.dtype)
    return s.unflat(gxw), _weight_grad(dg, s, output, h0, reverse), gh0


def _dstate_update(s: Schedule, t: int, dg: Tensor, w: Tensor, dstate: Tensor, G_H: int, P: int, accumulate: bool):
    """dH[rows of step t] (+)= dgates[step t] @ W_hh."""
    tiles = schedule.tiles(P, G_H)
    _launch(step.rows_matmul)[_grid_step(s, P, tiles["BH"])](
        dg, dg, dg, w, dstate, dstate, s.bs, s.off, t, G_H, P, P, 1,
        A_AT_OFF=True, ADD_A2=False, SAVE_A=False, C_AT_OFF=False, ACCUMULATE=accumulate, HAS_C2=False,
        **_flags(w.dtype), BB=tiles["BB"], BN=tiles["BH"], BK=tiles["BK"])


@_op("fastrnn_triton::rnn_tanh_forward", mutates_args=())
def rnn_tanh_forward(xw: Tensor, w_hh: Tensor, h0: Tensor, batch_sizes: Optional[Tensor],
                     reverse: bool) -> tuple[Tensor, Tensor]:
    return _rnn_forward(cells.TANH, xw, w_hh, h0, batch_sizes, reverse)


@_op("fastrnn_triton::rnn_relu_forward", mutates_args=())
def rnn_relu_forward(xw: Tensor, w_hh: Tensor, h0: Tensor, batch_sizes: Optional[Tensor],
                     reverse: bool) -> tuple[Tensor, Tensor]:
    return _rnn_forward(cells.RELU, xw, w_hh, h0, batch_sizes, reverse)


@_op("fastrnn_triton::rnn_tanh_backward", mutates_args=())
def rnn_tanh_backward(grad_output: Tensor, grad_h_n: Tensor, w_hh: Tensor, h0: Tensor, output: Tensor,
                      batch_sizes: Optional[Tensor], reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    return _rnn_backward(cells.TANH, grad_output, grad_h_n, w_hh, h0, output, batch_sizes, reverse)


@_op("fastrnn_triton::rnn_relu_backward", mutates_args=())
def rnn_relu_backward(grad_output: Tensor, grad_h_n: Tensor, w_hh: Tensor, h0: Tensor, output: Tensor,
                      batch_sizes: Optional[Tensor], reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    return _rnn_backward(cells.RELU, grad_output, grad_h_n, w_hh, h0, output, batch_sizes, reverse)


# ---- LSTM ------------------------------------------------------------------------------------------

@_op("fastrnn_triton::lstm_forward", mutates_args=())
def lstm_forward(xw: Tensor, w_hh: Tensor, w_hr: Optional[Tensor], h0: Tensor, c0: Tensor,
                 batch_sizes: Optional[Tensor], reverse: bool, save: bool = True,
                 bias: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    d = check_forward("lstm_forward", 4, xw, w_hh, h0, batch_sizes, w_hr=w_hr, c0=c0, bias=bias)
    if bias is not None:  # one pass over xw (the CPU backend adds it in its cell pass instead)
        xw = xw + bias
    H, P = d.H, d.P
    s = Schedule(xw, batch_sizes, h0.shape[0])
    x, w, h0, c0 = s.flat(xw), w_hh.contiguous(), h0.contiguous(), c0.contiguous()
    whr = w if w_hr is None else w_hr.contiguous()
    new = dict(dtype=xw.dtype, device=xw.device)
    out, gates, cells_ = torch.empty(s.N, P, **new), torch.empty(s.N, 4 * H, **new), torch.empty(s.N, H, **new)
    h_n, c_n = h0.clone(), c0.clone()
    proj = w_hr is not None
    if schedule.kernel_kind(4, H, P, xw.dtype) == "sequence":
        _launch(sequence.lstm_seq_forward)[(triton.cdiv(s.B, 16),)](
            x, w, whr, h0, c0, out, h_n, c_n, gates, cells_, s.bs, s.off, s.T, s.B, H, P, PROJ=proj, REVERSE=reverse,
            **_flags(xw.dtype), **schedule.seq_tiles(H, P))
    else:
        tiles = schedule.tiles(H, P)
        hraw = torch.empty(s.B, H, **new) if proj else out
        ptiles = schedule.tiles(P, H)
        for t, tp, has in s.order(reverse):
            _launch(step.lstm_step_forward)[_grid_step(s, H, tiles["BH"])](
                x, w, h0, c0, out, hraw, h_n, c_n, gates, cells_, s.bs, s.off, t, tp, has, H, P, PROJ=proj,
                **_flags(xw.dtype), **tiles)
            if proj:  # output[t] = h_raw @ w_hr^T, also into h_n
                _launch(step.rows_matmul)[_grid_step(s, P, ptiles["BH"])](
                    hraw, hraw, hraw, whr, out, h_n, s.bs, s.off, t, H, P, 1, H,
                    A_AT_OFF=False, ADD_A2=False, SAVE_A=False, C_AT_OFF=True, ACCUMULATE=False, HAS_C2=True,
                    **_flags(xw.dtype), BB=16, BN=ptiles["BH"], BK=ptiles["BK"])
    if not save:  # the kernels write the activations anyway (into gates, cells_): the schema's empty tensors
        return s.unflat(out), h_n, c_n, xw.new_empty(0), xw.new_empty(0)
    return s.unflat(out), h_n, c_n, s.unflat(gates), s.unflat(cells_)


@_op("fastrnn_triton::lstm_backward", mutates_args=())
def lstm_backward(grad_output: Tensor, grad_h_n: Tensor, grad_c_n: Tensor, w_hh: Tensor, w_hr: Optional[Tensor],
                  h0: Tensor, c0: Tensor, output: Tensor, gates: Tensor, cells: Tensor, batch_sizes: Optional[Tensor],
                  reverse: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    d = check_backward("lstm_backward", 4, grad_output, grad_h_n, w_hh, h0, output, batch_sizes, grad_c_n=grad_c_n,
                       w_hr=w_hr, c0=c0, saved=gates, saved_name="gates", cells=cells)
    H, P = d.H, d.P
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
        _launch(sequence.lstm_seq_backward)[(triton.cdiv(s.B, 16),)](
            gout, grad_h_n.contiguous(), grad_c_n.contiguous(), w, whr, c0, gts, cls, dg, gxw, dhp, gh0, gc0,
            s.bs, s.off, s.T, s.B, H, P, PROJ=proj, REVERSE=reverse, **_flags(dtype), **schedule.seq_tiles(H, P))
    else:
        dstate, dc = grad_h_n.to(acc, copy=True), grad_c_n.to(acc, copy=True)
        dhraw = torch.empty(s.B, H, dtype=acc, device=dev) if proj else dstate
        tiles = schedule.tiles(H, P)
        rtiles = schedule.tiles(H, P)
        for t, tp, has in s.order(reverse, backward=True):
            if proj:  # dhp[t] = grad_output[t] + dH; dh_raw = dhp[t] @ w_hr
                _launch(step.rows_matmul)[_grid_step(s, H, rtiles["BH"])](
                    gout, dstate, dhp, whr, dhraw, dhraw, s.bs, s.off, t, P, H, H, 1,
                    A_AT_OFF=True, ADD_A2=True, SAVE_A=True, C_AT_OFF=False, ACCUMULATE=False, HAS_C2=False,
                    **_flags(dtype), BB=16, BN=rtiles["BH"], BK=rtiles["BK"])
            _launch(step.lstm_step_backward)[_grid_step(s, H, tiles["BH"])](
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

@_op("fastrnn_triton::gru_forward", mutates_args=())
def gru_forward(xw: Tensor, w_hh: Tensor, b_hn: Optional[Tensor], h0: Tensor, batch_sizes: Optional[Tensor],
                reverse: bool, save: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    H = check_forward("gru_forward", 3, xw, w_hh, h0, batch_sizes, b_hn=b_hn).H
    s = Schedule(xw, batch_sizes, h0.shape[0])
    x, w, h0 = s.flat(xw), w_hh.contiguous(), h0.contiguous()
    bhn = w if b_hn is None else b_hn.contiguous()
    new = dict(dtype=xw.dtype, device=xw.device)
    out, ws = torch.empty(s.N, H, **new), torch.empty(s.N, 4 * H, **new)
    h_n = h0.clone()
    if schedule.kernel_kind(3, H, H, xw.dtype) == "sequence":
        _launch(sequence.gru_seq_forward)[(triton.cdiv(s.B, 16),)](
            x, w, bhn, h0, out, h_n, ws, s.bs, s.off, s.T, s.B, H, HAS_BHN=b_hn is not None, REVERSE=reverse,
            **_flags(xw.dtype), **schedule.seq_tiles(H, H))
    else:
        tiles = schedule.tiles(H, H)
        for t, tp, has in s.order(reverse):
            _launch(step.gru_step_forward)[_grid_step(s, H, tiles["BH"])](
                x, w, bhn, h0, out, h_n, ws, s.bs, s.off, t, tp, has, H, HAS_BHN=b_hn is not None,
                **_flags(xw.dtype), **tiles)
    return s.unflat(out), h_n, s.unflat(ws) if save else xw.new_empty(0)


@_op("fastrnn_triton::gru_backward", mutates_args=())
def gru_backward(grad_output: Tensor, grad_h_n: Tensor, w_hh: Tensor, b_hn: Optional[Tensor], h0: Tensor,
                 output: Tensor, workspace: Tensor, batch_sizes: Optional[Tensor],
                 reverse: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    H = check_backward("gru_backward", 3, grad_output, grad_h_n, w_hh, h0, output, batch_sizes, b_hn=b_hn,
                       saved=workspace, saved_name="workspace").H
    s = Schedule(output, batch_sizes, h0.shape[0])
    acc, acc_tl = schedule.acc_dtype(output.dtype)
    dtype, dev = output.dtype, output.device
    gout, out, w, h0, ws = s.flat(grad_output), s.flat(output), w_hh.contiguous(), h0.contiguous(), s.flat(workspace)
    dg = torch.empty(s.N, 3 * H, dtype=acc, device=dev)
    gxw = torch.empty(s.N, 3 * H, dtype=dtype, device=dev)
    if schedule.kernel_kind(3, H, H, dtype) == "sequence":
        gh0 = torch.empty_like(h0)
        _launch(sequence.gru_seq_backward)[(triton.cdiv(s.B, 16),)](
            gout, grad_h_n.contiguous(), w, h0, out, ws, dg, gxw, gh0, s.bs, s.off, s.T, s.B, H,
            REVERSE=reverse, **_flags(dtype), **schedule.seq_tiles(H, H))
    else:
        dstate = grad_h_n.to(acc, copy=True)
        tiles = schedule.tiles(H, H)
        for t, tp, has in s.order(reverse, backward=True):
            _launch(step.gru_step_backward)[_grid_step(s, H, tiles["BH"])](
                gout, out, h0, ws, dstate, dg, gxw, s.bs, s.off, t, tp, has, H, ACC=acc_tl,
                BB=tiles["BB"], BH=tiles["BH"])
            _dstate_update(s, t, dg, w, dstate, 3 * H, H, accumulate=True)
        gh0 = dstate.to(dtype)
    # Without b_hn its gradient is zeros, as the C++ backends return it.
    grad_b_hn = dg[:, 2 * H:].sum(0).to(dtype) if b_hn is not None else torch.zeros(H, dtype=dtype, device=dev)
    return s.unflat(gxw), _weight_grad(dg, s, output, h0, reverse), grad_b_hn, gh0
