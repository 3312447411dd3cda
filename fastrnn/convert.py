"""``fastrnn.convert(model)``: swap torch.nn's recurrent layers inside a model for their fastrnn twins."""
from __future__ import annotations

import copy

from torch import nn

from .backends import Backend, _parse
from .modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

# Exact types only: a user subclass of nn.LSTM may override forward, so it is left alone.
_TWINS: dict[type, type] = {nn.RNN: RNN, nn.LSTM: LSTM, nn.GRU: GRU,
                            nn.RNNCell: RNNCell, nn.LSTMCell: LSTMCell, nn.GRUCell: GRUCell}


def _constructor_args(module: nn.Module) -> dict:
    """The constructor arguments that define ``module``'s fastrnn twin."""
    args = dict(input_size=module.input_size, hidden_size=module.hidden_size, bias=module.bias)
    if isinstance(module, nn.RNNBase):
        args.update(num_layers=module.num_layers, batch_first=module.batch_first, dropout=module.dropout,
                    bidirectional=module.bidirectional)
        if isinstance(module, nn.LSTM):
            args["proj_size"] = module.proj_size
    if isinstance(module, (nn.RNN, nn.RNNCell)):
        args["nonlinearity"] = module.nonlinearity
    return args


def _twin(module: nn.Module, backend: Backend | None) -> nn.Module:
    """The fastrnn twin of one torch.nn layer, sharing its Parameter objects.

    The twin is built on the meta device (no allocation, no draw from the random generator), so it
    gets fastrnn's own attributes; then everything of the original (parameters, training mode,
    hooks, any attribute a user set) is copied over, the containers shallowly, so the two modules
    stay independent while sharing the very same Parameters (optimizers keep working)."""
    twin = _TWINS[type(module)](**_constructor_args(module), device="meta", backend=backend)
    for key, value in module.__dict__.items():
        twin.__dict__[key] = copy.copy(value) if isinstance(value, (dict, list)) else value
    return twin


def convert(model: nn.Module, *, backend: str | Backend | None = "auto") -> nn.Module:
    """Replace every ``nn.RNN/LSTM/GRU`` and ``nn.RNNCell/LSTMCell/GRUCell`` in ``model`` by its fastrnn twin.

    Works in place on nested submodules (``Sequential``, ``ModuleList``, ``ModuleDict`` included) and
    returns ``model``; when ``model`` itself is such a layer, the twin is returned, so always use the
    result. The twins share the original Parameter objects (state_dict keys, devices, dtypes and
    optimizers are unchanged), keep the training mode and every constructor setting, and run on
    ``backend`` (default: automatic choice). A module shared by several parents becomes one shared
    twin. Subclasses of the torch.nn layers are left as they are (their forward may differ).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert: model must be a torch.nn.Module, got {type(model).__name__}")
    chosen = _parse(backend, "backend=")
    done: dict[int, nn.Module] = {}

    def swap(module: nn.Module) -> nn.Module:
        if type(module) in _TWINS:
            if id(module) not in done:
                done[id(module)] = _twin(module, chosen)
            return done[id(module)]
        for name, child in module._modules.items():
            if child is not None:
                module._modules[name] = swap(child)
        return module

    return swap(model)
