"""The autograd.Functions that join each fused backend's forward and backward ops.

One Function per cell family. The backend is passed by name and its op namespace looked up with
``backends.ops_for``, so every fused backend (cpu, cuda, cuda_emulated, triton) shares them.
The fused backward is first-order only; under ``create_graph=True`` (double backward) the
gradients are computed instead by differentiating the plain-PyTorch recurrence of
``reference.py`` on the saved inputs, which autograd can differentiate again.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import reference
from .backends import Backend, ops_for


# Each fused backend's op namespace, read directly while torch.compile traces: Dynamo cannot trace
# ops_for, which may build or import the backend (functional.py loads it when it selects the backend).
_NAMESPACES = {Backend.CPU: "fastrnn", Backend.CUDA: "fastrnn", Backend.CUDA_EMULATED: "fastrnn_emulated",
               Backend.TRITON: "fastrnn_triton"}


def _op(backend: str, name: str):
    if torch.compiler.is_compiling():
        return getattr(getattr(torch.ops, _NAMESPACES[Backend(backend)]), name)
    return getattr(ops_for(Backend(backend)), name)


def _differentiable_grads(forward, inputs: tuple[Tensor | None, ...], outputs_wanted: int,
                          grads: tuple[Tensor, ...], args: tuple) -> tuple[Tensor | None, ...]:
    """Gradients of ``forward(*inputs, *args)[:outputs_wanted]`` by autograd, keeping the graph."""
    outs = forward(*inputs, *args)[:outputs_wanted]
    wrt = [t for t in inputs if t is not None and t.requires_grad]
    found = iter(torch.autograd.grad(outs, wrt, grads, create_graph=True, allow_unused=True))
    return tuple(next(found) if t is not None and t.requires_grad else None for t in inputs)


class RNNFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, backend: str, nonlinearity: str, xw, w_hh, h0, batch_sizes, reverse: bool):
        output, h_n = _op(backend, f"rnn_{nonlinearity}_forward")(xw, w_hh, h0, batch_sizes, reverse)
        ctx.save_for_backward(xw, w_hh, h0, output, batch_sizes)
        ctx.backend, ctx.nonlinearity, ctx.reverse = backend, nonlinearity, reverse
        return output, h_n

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        xw, w_hh, h0, output, batch_sizes = ctx.saved_tensors
        if torch.is_grad_enabled():
            fwd = getattr(reference, f"rnn_{ctx.nonlinearity}_forward")
            g = _differentiable_grads(fwd, (xw, w_hh, h0), 2, (grad_output, grad_h_n),
                                      (batch_sizes, ctx.reverse))
        else:
            g = _op(ctx.backend, f"rnn_{ctx.nonlinearity}_backward")(
                grad_output.contiguous(), grad_h_n.contiguous(), w_hh, h0, output, batch_sizes, ctx.reverse)
        return (None, None, *g, None, None)


class LSTMFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, backend: str, xw, w_hh, w_hr, h0, c0, batch_sizes, reverse: bool):
        output, h_n, c_n, gates, cells = _op(backend, "lstm_forward")(xw, w_hh, w_hr, h0, c0, batch_sizes, reverse)
        ctx.save_for_backward(xw, w_hh, w_hr, h0, c0, output, gates, cells, batch_sizes)
        ctx.backend, ctx.reverse = backend, reverse
        return output, h_n, c_n

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n):
        xw, w_hh, w_hr, h0, c0, output, gates, cells, batch_sizes = ctx.saved_tensors
        if torch.is_grad_enabled():
            g = _differentiable_grads(reference.lstm_forward, (xw, w_hh, w_hr, h0, c0), 3,
                                      (grad_output, grad_h_n, grad_c_n), (batch_sizes, ctx.reverse))
        else:
            g = _op(ctx.backend, "lstm_backward")(
                grad_output.contiguous(), grad_h_n.contiguous(), grad_c_n.contiguous(), w_hh, w_hr,
                h0, c0, output, gates, cells, batch_sizes, ctx.reverse)
            if w_hr is None:
                g = (g[0], g[1], None, g[3], g[4])
        return (None, *g, None, None)


class GRUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, backend: str, xw, w_hh, b_hn, h0, batch_sizes, reverse: bool):
        output, h_n, workspace = _op(backend, "gru_forward")(xw, w_hh, b_hn, h0, batch_sizes, reverse)
        ctx.save_for_backward(xw, w_hh, b_hn, h0, output, workspace, batch_sizes)
        ctx.backend, ctx.reverse = backend, reverse
        return output, h_n

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        xw, w_hh, b_hn, h0, output, workspace, batch_sizes = ctx.saved_tensors
        if torch.is_grad_enabled():
            g = _differentiable_grads(reference.gru_forward, (xw, w_hh, b_hn, h0), 2,
                                      (grad_output, grad_h_n), (batch_sizes, ctx.reverse))
        else:
            g = _op(ctx.backend, "gru_backward")(
                grad_output.contiguous(), grad_h_n.contiguous(), w_hh, b_hn, h0, output, workspace,
                batch_sizes, ctx.reverse)
            if b_hn is None:
                g = (g[0], g[1], None, g[3])
        return (None, *g, None, None)
