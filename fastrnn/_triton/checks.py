"""The argument checks of the Triton ops: ``csrc/checks.h`` in Python, with the same rules and messages.

Every failure is a RuntimeError (as TORCH_CHECK raises in the C++ backends) naming the op, the
argument and what was expected, raised before any kernel is launched. The values of
``batch_sizes`` (a CPU tensor) are checked only when they exist: under torch.compile or opcheck
the ops run on fake tensors, whose data cannot be read.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake

from .schedule import interpreted

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


@dataclasses.dataclass
class Dims:
    T: int = 0
    B: int = 0
    N: int = 0
    H: int = 0
    P: int = 0
    lead: tuple[int, ...] = ()

    def seq(self, width: int) -> tuple[int, ...]:
        return (*self.lead, width)


def _fail(op: str, message: str) -> None:
    raise RuntimeError(f"fastrnn_triton::{op}: {message}")


def _check_like(op: str, name: str, t: Tensor, ref: Tensor, ref_name: str, shape: tuple[int, ...]) -> None:
    if t.device != ref.device:
        _fail(op, f"{name} must be on the same device as {ref_name} ({ref.device}), got {t.device}")
    if t.dtype != ref.dtype:
        _fail(op, f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {t.dtype}")
    if tuple(t.shape) != tuple(shape):
        _fail(op, f"{name} must have shape {list(shape)}, got {list(t.shape)}")


def _check_layout(op: str, name: str, seq: Tensor, batch_sizes: Optional[Tensor], width: str) -> Dims:
    if seq.dtype not in _DTYPES:
        _fail(op, f"{name} has dtype {seq.dtype}, this backend supports float32, float64, float16, bfloat16")
    if seq.device.type != "cuda" and not (seq.device.type == "cpu" and interpreted()):
        _fail(op, f"{name} must be on CUDA (or the CPU under TRITON_INTERPRET=1), got device {seq.device}")
    d = Dims()
    if batch_sizes is None:
        if seq.dim() != 3:
            _fail(op, f"{name} must be 3-D [T, B, {width}] (or 2-D with batch_sizes), got shape {list(seq.shape)}")
        d.T, d.B = seq.shape[0], seq.shape[1]
        if d.T < 1:
            _fail(op, f"{name} must have at least one time step, got shape {list(seq.shape)}")
        d.N, d.lead = d.T * d.B, (d.T, d.B)
        return d
    if batch_sizes.device.type != "cpu":
        _fail(op, f"batch_sizes must be a CPU tensor, got device {batch_sizes.device}")
    if batch_sizes.dtype != torch.int64:
        _fail(op, f"batch_sizes must be int64, got {batch_sizes.dtype}")
    if batch_sizes.dim() != 1 or batch_sizes.numel() < 1:
        _fail(op, f"batch_sizes must be 1-D with at least one step, got shape {list(batch_sizes.shape)}")
    if seq.dim() != 2:
        _fail(op, f"{name} must be 2-D [N, width] when batch_sizes is given, got shape {list(seq.shape)}")
    d.T, d.N, d.lead = batch_sizes.numel(), seq.shape[0], (seq.shape[0],)
    if is_fake(batch_sizes):
        d.B = -1  # data-dependent: the caller takes it from h0
        return d
    sizes = batch_sizes.tolist()
    for t, b in enumerate(sizes):
        if b < 1:
            _fail(op, f"batch_sizes must be positive, got {b} at step {t}")
        if t and b > sizes[t - 1]:
            _fail(op, f"batch_sizes must be non-increasing, got {sizes[t - 1]} then {b} at step {t}")
    if sum(sizes) != d.N:
        _fail(op, f"{name} must have sum(batch_sizes) = {sum(sizes)} rows, got {d.N}")
    d.B = sizes[0]
    return d


def _check_weights(op: str, d: Dims, gates: int, w_hh: Tensor, w_hr: Optional[Tensor], ref: Tensor,
                   ref_name: str, h0: Tensor) -> None:
    if w_hh.dim() != 2 or w_hh.shape[0] < gates or w_hh.shape[0] % gates:
        _fail(op, f"w_hh must be 2-D [{gates}*H, P] with H >= 1, got shape {list(w_hh.shape)}")
    d.H = d.P = w_hh.shape[0] // gates
    if w_hr is not None:
        if w_hr.dim() != 2 or w_hr.shape[0] < 1:
            _fail(op, f"w_hr must be 2-D [P, H] with P >= 1, got shape {list(w_hr.shape)}")
        d.P = w_hr.shape[0]
        _check_like(op, "w_hr", w_hr, ref, ref_name, (d.P, d.H))
    _check_like(op, "w_hh", w_hh, ref, ref_name, (gates * d.H, d.P))
    if d.B < 0:  # packed on fake tensors: the batch is h0's
        d.B = h0.shape[0] if h0.dim() == 2 else -1


def check_forward(op: str, gates: int, xw: Tensor, w_hh: Tensor, h0: Tensor, batch_sizes: Optional[Tensor],
                  w_hr: Optional[Tensor] = None, b_hn: Optional[Tensor] = None,
                  c0: Optional[Tensor] = None, bias: Optional[Tensor] = None) -> Dims:
    d = _check_layout(op, "xw", xw, batch_sizes, "G*H")
    _check_weights(op, d, gates, w_hh, w_hr, xw, "xw", h0)
    if xw.shape[-1] != gates * d.H:
        _fail(op, f"xw must have {gates}*H = {gates * d.H} columns (w_hh is {list(w_hh.shape)}), "
                  f"got shape {list(xw.shape)}")
    if b_hn is not None:
        _check_like(op, "b_hn", b_hn, xw, "xw", (d.H,))
    if bias is not None:
        _check_like(op, "bias", bias, xw, "xw", (gates * d.H,))
    _check_like(op, "h0", h0, xw, "xw", (d.B, d.P))
    if c0 is not None:
        _check_like(op, "c0", c0, xw, "xw", (d.B, d.H))
    return d


def check_backward(op: str, gates: int, grad_output: Tensor, grad_h_n: Tensor, w_hh: Tensor, h0: Tensor,
                   output: Tensor, batch_sizes: Optional[Tensor], *, grad_c_n: Optional[Tensor] = None,
                   w_hr: Optional[Tensor] = None, b_hn: Optional[Tensor] = None, c0: Optional[Tensor] = None,
                   saved: Optional[Tensor] = None, saved_name: str = "", cells: Optional[Tensor] = None) -> Dims:
    ref = "grad_output"
    d = _check_layout(op, ref, grad_output, batch_sizes, "P")
    _check_weights(op, d, gates, w_hh, w_hr, grad_output, ref, h0)
    _check_like(op, ref, grad_output, grad_output, ref, d.seq(d.P))
    _check_like(op, "output", output, grad_output, ref, d.seq(d.P))
    _check_like(op, "grad_h_n", grad_h_n, grad_output, ref, (d.B, d.P))
    _check_like(op, "h0", h0, grad_output, ref, (d.B, d.P))
    for name, t, shape in (("grad_c_n", grad_c_n, (d.B, d.H)), ("c0", c0, (d.B, d.H)), ("b_hn", b_hn, (d.H,)),
                           (saved_name, saved, d.seq(4 * d.H)), ("cells", cells, d.seq(d.H))):
        if t is not None:
            _check_like(op, name, t, grad_output, ref, shape)
    return d
