"""Builders shared by the module tests: a torch.nn model and its fastrnn twin with the same weights."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn

# name -> (torch class, fastrnn class, extra constructor kwargs)
CELLS = {
    "rnn_tanh": (nn.RNN, fastrnn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, fastrnn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, fastrnn.LSTM, {}),
    "lstm_proj": (nn.LSTM, fastrnn.LSTM, {"proj_size": 3}),
    "gru": (nn.GRU, fastrnn.GRU, {}),
}
INPUTS = ("padded", "packed", "packed_unsorted", "unbatched")
LENGTHS = {"packed": [5, 4, 2], "packed_unsorted": [3, 5, 1]}


def twins(cell: str, *, input_size=4, hidden=5, backend="auto", dtype=torch.float32, seed=0, **kwargs):
    torch_cls, fast_cls, extra = CELLS[cell]
    torch.manual_seed(seed)
    ref = torch_cls(input_size, hidden, dtype=dtype, **extra, **kwargs)
    fast = fast_cls(input_size, hidden, dtype=dtype, backend=backend, **extra, **kwargs)
    fast.load_state_dict(ref.state_dict(), strict=True)
    return ref, fast


def make_input(kind: str, ref: nn.RNNBase, *, T=5, B=3, dtype=torch.float32, seed=1, with_hx=True):
    """(input factory, leaf tensors) — the factory rebuilds the module input from the leaves, so
    gradients can be taken with respect to the leaves for either model."""
    g = torch.Generator().manual_seed(seed)
    dirs = 2 if ref.bidirectional else 1
    out_size = ref.proj_size or ref.hidden_size
    batched = kind != "unbatched"
    shape = (T, B, ref.input_size) if batched else (T, ref.input_size)
    if batched and ref.batch_first:
        shape = (B, T, ref.input_size)
    x = torch.randn(shape, generator=g, dtype=dtype, requires_grad=True)
    hx = None
    if with_hx:
        states = [out_size] + ([ref.hidden_size] if isinstance(ref, nn.LSTM) else [])
        hshape = (ref.num_layers * dirs, B) if batched else (ref.num_layers * dirs,)
        hx = [torch.randn(*hshape, s, generator=g, dtype=dtype, requires_grad=True) for s in states]
    leaves = [x] + (hx or [])

    def build():
        inp = x
        if kind.startswith("packed"):
            inp = pack_padded_sequence(x, torch.tensor(LENGTHS[kind][:B]), batch_first=ref.batch_first,
                                       enforce_sorted=kind == "packed")
        h = None if hx is None else (tuple(hx) if len(hx) == 2 else hx[0])
        return inp, h

    return build, leaves


def flatten(result) -> list[torch.Tensor]:
    """The tensors of a module's return value, PackedSequence data included, in a fixed order."""
    out, state = result
    out = out.data if hasattr(out, "batch_sizes") else out
    return [out] + (list(state) if isinstance(state, tuple) else [state])
