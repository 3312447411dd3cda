"""The autograd.Function that joins each fused backend's forward and backward ops.

One Function for one layer and direction of every cell family: the input projection
``x @ w_ih^T + b`` (one GEMM over all steps) and the fused recurrence are a single autograd node,
whose backward runs the recurrence's backward op and then the projection's three products
(skipping those whose inputs need no gradient). One node instead of the dozen the projection's
bias sum, GEMM, views and the recurrence make: at small shapes the engine's cost per node, not the
kernels, sets the time. The backend is passed by name and its op namespace looked up with
``backends.ops_for``, so every fused backend (cpu, cuda, cuda_emulated, triton) shares it. On the cpu
backend (only reached under torch.compile: eager calls take the C++ node below) the products go through
``fastrnn::matmul`` and the LSTM forward through ``fastrnn::lstm_layer_forward``, the C++ node's own.

The fused backward is first-order only; under ``create_graph=True`` (double backward) the
gradients are computed instead by differentiating the plain-PyTorch layer (``reference.py``'s
recurrence after the same projection) on the saved inputs, which autograd can differentiate again.

The compiled extension has the same node in C++ (``torch.ops.fastrnn.layer``, csrc/layer.cpp),
which eager calls on the cpu backend use: at small shapes this Function's Python costs about as much
as the kernels. Its double backward calls ``fastrnn::layer_reference_grads``, defined here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import reference
from .backends import Backend, ops_for

# Each fused backend's op namespace, read directly while torch.compile traces: Dynamo cannot trace
# ops_for, which may build or import the backend (functional.py loads it when it selects the backend).
_NAMESPACES = {Backend.CPU: "fastrnn", Backend.CUDA: "fastrnn", Backend.CUDA_EMULATED: "fastrnn_emulated",
               Backend.TRITON: "fastrnn_triton"}


def _ops(backend: str):
    if torch.compiler.is_compiling():
        return getattr(torch.ops, _NAMESPACES[Backend(backend)])
    return ops_for(Backend(backend))


def projection_bias(mode: str, b_ih: Tensor | None, b_hh: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """The bias added in the input GEMM, and GRU's b_hn, which cannot be folded (it sits inside r * (...))."""
    if b_ih is None:
        return None, None
    if mode == "gru":
        hidden = b_hh.shape[0] // 3
        return b_ih + torch.cat([b_hh[:2 * hidden], b_hh.new_zeros(hidden)]), _gru_b_hn(b_hh)
    return b_ih + b_hh, None


def _gru_b_hn(b_hh: Tensor | None) -> Tensor | None:
    """GRU's n-gate part of b_hh (the last third)."""
    return None if b_hh is None else b_hh[2 * (b_hh.shape[0] // 3):]


def _rows(t: Tensor) -> Tensor:
    """[T, B, n] or packed [N, n] as [rows, n]."""
    return t.reshape(-1, t.shape[-1])


def _mm(backend: str, a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """a @ b (+ bias); on the cpu backend through fastrnn::matmul, the GEMM its C++ layer runs (torch.compile
    would give torch.mm to MKL, whose generic kernels on AMD CPUs ran at half the speed)."""
    if backend == Backend.CPU.value:
        return torch.ops.fastrnn.matmul(a, b, bias)
    return torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)


def _project(backend: str, x: Tensor, w_ih: Tensor, b: Tensor | None) -> Tensor:
    return _mm(backend, _rows(x), w_ih.t(), b).view(*x.shape[:-1], w_ih.shape[0])


def reference_layer(mode: str, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, reverse):
    """The layer in plain PyTorch: (output, h_n[, c_n]) and the saved activations, as the fused path."""
    b, b_hn = projection_bias(mode, b_ih, b_hh)
    xw = F.linear(x, w_ih, b)
    if mode == "lstm":
        return reference.lstm_forward(xw, w_hh, w_hr, h0, c0, batch_sizes, reverse)
    if mode == "gru":
        return reference.gru_forward(xw, w_hh, b_hn, h0, batch_sizes, reverse)
    return getattr(reference, f"{mode}_forward")(xw, w_hh, h0, batch_sizes, reverse)


def fused_layer(mode: str, backend: str, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, reverse: bool,
                save: bool = True):
    """The layer's forward on a fused backend: ((output, h_n[, c_n]), activations saved for backward).
    Called directly, with save=False (the ops then keep no activations), where no gradient is needed."""
    b, b_hn = projection_bias(mode, b_ih, b_hh)
    ops = _ops(backend)
    if mode == "lstm":  # the op adds the bias as it reads xw: addmm's bias is one more pass over xw
        if backend == Backend.CPU.value:  # x @ W_ih^T in the steps' GEMMs where that pays, as the C++ layer
            output, h_n, c_n, *saved = ops.lstm_layer_forward(x, w_ih, w_hh, w_hr, h0, c0, batch_sizes, reverse,
                                                              save, b)
        else:
            xw = _project(backend, x, w_ih, None)
            output, h_n, c_n, *saved = ops.lstm_forward(xw, w_hh, w_hr, h0, c0, batch_sizes, reverse, save, b)
        return (output, h_n, c_n), saved
    xw = _project(backend, x, w_ih, b)
    if mode == "gru":
        output, h_n, *saved = ops.gru_forward(xw, w_hh, b_hn, h0, batch_sizes, reverse, save)
        return (output, h_n), saved
    return getattr(ops, f"{mode}_forward")(xw, w_hh, h0, batch_sizes, reverse), []


def _reference_grads(mode: str, inputs: list[Tensor | None], reverse: bool, grads: list[Tensor]) -> list[Tensor]:
    """The gradients of (x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0) through ``reference_layer``, with their
    own graph (create_graph): empty for inputs that need none."""
    *tensors, batch_sizes = inputs
    wanted = [t for t in tensors if t is not None and t.requires_grad]
    outputs = reference_layer(mode, *tensors, batch_sizes, reverse)[:len(grads)]
    found = iter(torch.autograd.grad(outputs, wanted, grads, create_graph=True, allow_unused=True))
    result = []
    for t in tensors:
        if t is None or not t.requires_grad:
            result.append(grads[0].new_empty(0))
        else:
            g = next(found)
            result.append(torch.zeros_like(t) if g is None else g)
    return result


def register_reference_grads(namespace: str) -> None:
    """Defines ``<namespace>::layer_reference_grads``, which the C++ layer's double backward calls."""
    lib = torch.library.Library(namespace, "FRAGMENT")
    lib.define("layer_reference_grads(str cell, Tensor?[] inputs, bool reverse, Tensor[] grads) -> Tensor[]")
    lib.impl("layer_reference_grads", _reference_grads, "CompositeImplicitAutograd")
    _LIBRARIES.append(lib)


_LIBRARIES: list[torch.library.Library] = []  # a Library's registrations last as long as it does


class LayerFunction(torch.autograd.Function):
    """``apply(mode, backend, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, reverse)``:
    (output, h_n) for RNN and GRU, (output, h_n, c_n) for LSTM. x is [T, B, I] or packed [N, I];
    biases, w_hr (LSTM's projection) and c0 (LSTM only) may be None."""

    @staticmethod
    def forward(ctx, mode: str, backend: str, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes,
                reverse: bool):
        results, saved = fused_layer(mode, backend, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, reverse)
        ctx.save_for_backward(x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, results[0], *saved)
        ctx.mode, ctx.backend, ctx.reverse = mode, backend, reverse
        return results

    @staticmethod
    def backward(ctx, *grads):
        x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, output, *saved = ctx.saved_tensors
        mode, reverse = ctx.mode, ctx.reverse
        inputs = (x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0)
        if torch.is_grad_enabled():
            found = iter(torch.autograd.grad(
                reference_layer(mode, *inputs, batch_sizes, reverse)[:len(grads)],
                [t for t in inputs if t is not None and t.requires_grad], grads,
                create_graph=True, allow_unused=True))
            g = tuple(next(found) if t is not None and t.requires_grad else None for t in inputs)
            return (None, None, *g, None, None)
        grads = tuple(t.contiguous() for t in grads)
        ops = _ops(ctx.backend)
        d_b_hn = d_c0 = d_w_hr = None
        if mode == "lstm":
            d_xw, d_w_hh, d_w_hr, d_h0, d_c0 = ops.lstm_backward(*grads, w_hh, w_hr, h0, c0, output, *saved,
                                                                  batch_sizes, reverse)
            d_w_hr = d_w_hr if w_hr is not None else None
        elif mode == "gru":
            b_hn = _gru_b_hn(b_hh)
            d_xw, d_w_hh, d_b_hn, d_h0 = ops.gru_backward(*grads, w_hh, b_hn, h0, output, *saved, batch_sizes,
                                                          reverse)
        else:
            d_xw, d_w_hh, d_h0 = getattr(ops, f"{mode}_backward")(*grads, w_hh, h0, output, batch_sizes, reverse)
        need = ctx.needs_input_grad
        d_rows = _rows(d_xw)
        d_x = _mm(ctx.backend, d_rows, w_ih).view(x.shape) if need[2] else None
        d_w_ih = _mm(ctx.backend, d_rows.t(), _rows(x)) if need[3] else None
        d_b_ih = d_b_hh = None
        if b_ih is not None and (need[5] or need[6]):
            d_b_ih = d_rows.sum(0)
            if mode == "gru":
                d_b_hh = torch.cat([d_b_ih[:2 * b_hn.shape[0]], d_b_hn])
            else:
                d_b_hh = d_b_ih.clone()  # its own tensor, as torch.nn gives each bias
        return (None, None, d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr, d_h0, d_c0, None, None)
