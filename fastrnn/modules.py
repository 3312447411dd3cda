"""Drop-in replacements for torch.nn.RNN / LSTM / GRU and their cells, running on fastrnn's backends.

The sequence modules subclass ``torch.nn.RNNBase`` exactly as torch's own do (not ``nn.LSTM``,
which Dynamo refuses to trace), so parameters, init, ``_flat_weights``, state_dict and repr are
torch's. The cells subclass torch's cells. Each takes one extra keyword, ``backend``.
"""
from __future__ import annotations

import torch
from torch import nn

from . import functional
from .backends import Backend, _parse


def _backend_arg(backend) -> Backend | None:
    return _parse(backend, "backend=")


class _FusedRNNBase(nn.RNNBase):
    _mode: str

    def __init__(self, *args, backend: str | Backend | None = "auto", **kwargs):
        self.backend = _backend_arg(backend)
        super().__init__(*args, **kwargs)

    def _weights_have_changed(self) -> bool:
        """torch's check, reading the module's own parameters from ``_parameters``: its getattr and
        hasattr go through ``nn.Module.__getattr__`` twice per weight, a measurable share of a small
        layer's time. A weight that is no plain parameter (a parametrization, say) takes torch's way."""
        params = self._parameters
        for ref, name in zip(self._flat_weight_refs, self._flat_weights_names):
            if name not in params:
                return super()._weights_have_changed()
            weight = params[name]
            if weight is not None and ref is not None and ref() is not weight:
                return True
        return False

    def forward(self, input, hx=None):
        self._update_flat_weights()
        fn = getattr(functional, self._mode)
        return fn(input, hx, self._flat_weights, self.bias, self.num_layers, self.dropout, self.training,
                  self.bidirectional, self.batch_first, backend=self.backend)


class RNN(_FusedRNNBase):
    """``torch.nn.RNN`` (tanh or relu), fused. Same arguments, plus ``backend``."""

    def __init__(self, *args, backend: str | Backend | None = "auto", **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            self.nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'.")
        self._mode = f"rnn_{self.nonlinearity}"
        super().__init__("RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU", *args, backend=backend, **kwargs)


class LSTM(_FusedRNNBase):
    """``torch.nn.LSTM`` (with ``proj_size``), fused. Same arguments, plus ``backend``."""

    _mode = "lstm"

    def __init__(self, *args, backend: str | Backend | None = "auto", **kwargs):
        super().__init__("LSTM", *args, backend=backend, **kwargs)


class GRU(_FusedRNNBase):
    """``torch.nn.GRU``, fused. Same arguments, plus ``backend``."""

    _mode = "gru"

    def __init__(self, *args, backend: str | Backend | None = "auto", **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, backend=backend, **kwargs)


class _FusedCell:
    """Mixin: one fused step through ``functional.cell``."""

    def _init_backend(self, backend) -> None:
        self.backend = _backend_arg(backend)

    def _step(self, mode: str, input, hx):
        # From _parameters: each weight's attribute goes through nn.Module.__getattr__, 0.6 us a weight against
        # a cell's 17 us (RNNCell, batch 1, H=64, no grad). A parametrized weight is no plain parameter.
        params = self._parameters
        try:
            weights = params["weight_ih"], params["weight_hh"], params["bias_ih"], params["bias_hh"]
        except KeyError:
            weights = self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        return functional.cell(mode, input, hx, *weights, backend=self.backend)


class RNNCell(_FusedCell, nn.RNNCell):
    """``torch.nn.RNNCell``, one fused step. Same arguments, plus ``backend``."""

    def __init__(self, *args, backend: str | Backend | None = "auto", **kwargs):
        self._init_backend(backend)
        super().__init__(*args, **kwargs)
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {self.nonlinearity}")

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        return self._step(f"rnn_{self.nonlinearity}", input, hx)


class LSTMCell(_FusedCell, nn.LSTMCell):
    """``torch.nn.LSTMCell``, one fused step. Same arguments, plus ``backend``."""

    def __init__(self, *args, backend: str | Backend | None = "auto", **kwargs):
        self._init_backend(backend)
        super().__init__(*args, **kwargs)

    def forward(self, input, hx=None):
        return self._step("lstm", input, hx)


class GRUCell(_FusedCell, nn.GRUCell):
    """``torch.nn.GRUCell``, one fused step. Same arguments, plus ``backend``."""

    def __init__(self, *args, backend: str | Backend | None = "auto", **kwargs):
        self._init_backend(backend)
        super().__init__(*args, **kwargs)

    def forward(self, input, hx=None):
        return self._step("gru", input, hx)
