"""Fake (meta) implementations of the fused ops, so torch.compile traces them and opcheck passes.

The shapes follow the schema comment in ``csrc/schemas.h`` (save=False: empty saved activations).
``register_fakes`` is called for each namespace that defines the ops (``fastrnn`` from the compiled
extension, ``fastrnn_emulated`` from the SIMT-emulated build).
"""
from __future__ import annotations

import torch
from torch import Tensor


def _rows(xw: Tensor, width: int) -> Tensor:
    return xw.new_empty((*xw.shape[:-1], width))


def _rnn_forward(xw, w_hh, h0, batch_sizes, reverse):
    return _rows(xw, w_hh.shape[1]), torch.empty_like(h0)


def _rnn_backward(grad_output, grad_h_n, w_hh, h0, output, batch_sizes, reverse):
    xw_shape = (*output.shape[:-1], w_hh.shape[0])
    return output.new_empty(xw_shape), torch.empty_like(w_hh), torch.empty_like(h0)


def _lstm_forward(xw, w_hh, w_hr, h0, c0, batch_sizes, reverse, save=True, bias=None):
    hidden = w_hh.shape[0] // 4
    saved = (torch.empty_like(xw), _rows(xw, hidden)) if save else (xw.new_empty(0), xw.new_empty(0))
    return (_rows(xw, w_hh.shape[1]), torch.empty_like(h0), torch.empty_like(c0), *saved)


def _lstm_backward(grad_output, grad_h_n, grad_c_n, w_hh, w_hr, h0, c0, output, gates, cells,
                   batch_sizes, reverse):
    grad_w_hr = torch.empty_like(w_hr) if w_hr is not None else w_hh.new_empty(0)
    return (torch.empty_like(gates), torch.empty_like(w_hh), grad_w_hr, torch.empty_like(h0),
            torch.empty_like(c0))


def _gru_forward(xw, w_hh, b_hn, h0, batch_sizes, reverse, save=True):
    hidden = w_hh.shape[0] // 3
    return _rows(xw, hidden), torch.empty_like(h0), _rows(xw, 4 * hidden) if save else xw.new_empty(0)


def _gru_backward(grad_output, grad_h_n, w_hh, b_hn, h0, output, workspace, batch_sizes, reverse):
    hidden = w_hh.shape[0] // 3
    return (_rows(workspace, 3 * hidden), torch.empty_like(w_hh), w_hh.new_empty(hidden),
            torch.empty_like(h0))


FAKES = {
    "rnn_tanh_forward": _rnn_forward,
    "rnn_relu_forward": _rnn_forward,
    "rnn_tanh_backward": _rnn_backward,
    "rnn_relu_backward": _rnn_backward,
    "lstm_forward": _lstm_forward,
    "lstm_backward": _lstm_backward,
    "gru_forward": _gru_forward,
    "gru_backward": _gru_backward,
}


def _matmul(a, b, bias=None):
    return a.new_empty((a.shape[0], b.shape[1]))


def _lstm_layer_forward(x, w_ih, w_hh, w_hr, h0, c0, batch_sizes, reverse, save=True, bias=None):
    return _lstm_forward(_rows(x, w_ih.shape[0]), w_hh, w_hr, h0, c0, batch_sizes, reverse, save, bias)


# The cpu backend's own ops (csrc/registration.cpp), in namespace fastrnn only.
CPU_FAKES = {"matmul": _matmul, "lstm_layer_forward": _lstm_layer_forward}


def register_fakes(namespace: str) -> None:
    for name, fn in {**FAKES, **(CPU_FAKES if namespace == "fastrnn" else {})}.items():
        torch.library.register_fake(f"{namespace}::{name}", fn)
