"""rnn_tanh / rnn_relu / lstm / gru over explicit weights: the whole of torch.nn's RNN forward.

Takes what the torch.nn modules take (a 3-D, unbatched 2-D or PackedSequence ``input``, ``hx`` or
None) and the modules' flat weight list (per layer and direction: w_ih, w_hh, [b_ih, b_hh], [w_hr]),
validates everything before any kernel runs, and composes the one-layer, one-direction recurrence
of the chosen backend over layers and directions. The input projection of each layer is one GEMM
over all time steps, inside the layer's one autograd node (autograd.LayerFunction; on the cpu backend its
C++ twin, torch.ops.fastrnn.layer). On the cpu backend, eager calls (tensor or packed input) run as one C++ op,
torch.ops.fastrnn.rnn or (cells) torch.ops.fastrnn.cell (csrc/rnn.cpp), which make the same checks with the
same messages and the same composition: at small shapes this module's Python took as long as the layer.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from . import backends
from .autograd import LayerFunction, fused_layer, reference_layer
from .backends import Backend, ops_for, select

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
_NAMES = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype torch.nn's RNNs compute in under autocast on x's device, or None."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return None


@torch.compiler.assume_constant_result
def _select_when_tracing(device: torch.device, dtype: torch.dtype, requested, override) -> str:
    """``select`` run once by torch.compile at trace time: it inspects the process (the extension,
    ``FASTRNN_BACKEND``), which Dynamo cannot trace. ``override`` (the innermost ``use_backend``) is
    an argument only so the compiled graph is guarded on it; the environment is read when compiling."""
    chosen = select(torch.empty(0, device=device, dtype=dtype), requested)
    if chosen is not Backend.TORCH:
        ops_for(chosen)  # loads the backend's ops now: the traced code then finds them in torch.ops
    return chosen.value


def _select(x: Tensor, requested) -> Backend:
    if torch.compiler.is_compiling():
        override = backends._override[-1] if backends._override else None
        return Backend(_select_when_tracing(x.device, x.dtype, requested, override))
    return select(x, requested)


def _layer(weights: Sequence[Tensor], index: int, bias: bool, proj: bool):
    """(w_ih, w_hh, b_ih, b_hh, w_hr) of one layer-direction in torch's flat order."""
    per = 2 + 2 * bias + proj
    w = list(weights[index * per:(index + 1) * per])
    w_ih, w_hh = w[0], w[1]
    b_ih, b_hh = (w[2], w[3]) if bias else (None, None)
    w_hr = w[-1] if proj else None
    return w_ih, w_hh, b_ih, b_hh, w_hr


def _check_weights(mode: str, weights: Sequence[Tensor], bias: bool, num_layers: int, num_dirs: int) -> bool:
    """Validates the flat weight list; returns whether it carries LSTM projections."""
    n = len(weights)
    count = num_layers * num_dirs
    if count == 0 or n % count:
        raise ValueError(f"weights: expected a multiple of num_layers * num_directions = {count} tensors, got {n}")
    per = n // count
    base = 2 + 2 * bias
    if per not in (base, base + (mode == "lstm")):
        raise ValueError(f"weights: expected {base} tensors per layer and direction "
                         f"(w_ih, w_hh{', b_ih, b_hh' if bias else ''}), got {per}")
    proj = per == base + 1
    gates = _GATES[mode]
    for idx in range(count):
        w_ih, w_hh, b_ih, b_hh, w_hr = _layer(weights, idx, bias, proj)
        hidden = w_hh.shape[0] // gates
        size = w_hr.shape[0] if proj else hidden
        if w_hh.dim() != 2 or w_hh.shape != (gates * hidden, size) or hidden == 0:
            raise ValueError(f"weights: weight_hh of layer-direction {idx} has shape {tuple(w_hh.shape)}, "
                             f"expected ({gates} * hidden_size, {'proj_size' if proj else 'hidden_size'})")
        if w_ih.dim() != 2 or w_ih.shape[0] != gates * hidden:
            raise ValueError(f"weights: weight_ih of layer-direction {idx} has shape {tuple(w_ih.shape)}, "
                             f"expected ({gates * hidden}, input_size)")
        if idx >= num_dirs and w_ih.shape[1] != size * num_dirs:
            raise ValueError(f"weights: weight_ih of layer-direction {idx} expects input size {w_ih.shape[1]}, "
                             f"but the layer below produces {size * num_dirs}")
        for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
            if b is not None and b.shape != (gates * hidden,):
                raise ValueError(f"weights: {name} of layer-direction {idx} has shape {tuple(b.shape)}, "
                                 f"expected ({gates * hidden},)")
        if proj and w_hr.shape != (size, hidden):
            raise ValueError(f"weights: weight_hr of layer-direction {idx} has shape {tuple(w_hr.shape)}, "
                             f"expected (proj_size, {hidden})")
    return proj


def _check_state(name: str, h: Tensor, expected: tuple[int, ...], x: Tensor, check_dtype: bool) -> None:
    layers, batch, size = expected
    tracing = torch.compiler.is_compiling()
    if h.dim() != 3 or h.shape[0] != layers or h.shape[2] != size or (not tracing and h.shape[1] != batch):
        raise RuntimeError(f"Expected {name} size {expected}, got {list(h.shape)}")
    # The batch of packed input is data (batch_sizes[0]), an unbacked size under torch.compile, where
    # Python cannot branch on it: torch._check makes the comparison a runtime assert of the graph.
    if tracing:
        torch._check(h.shape[1] == batch, lambda: f"Expected {name} to have the input's batch size in dimension 1")
    if h.device != x.device:
        raise RuntimeError(f"{name} is on {h.device} but input is on {x.device}")
    if check_dtype and h.dtype != x.dtype:
        raise ValueError(f"{name} dtype ({h.dtype}) does not match input dtype ({x.dtype})")


def _stack(mode: str, x: Tensor, h0: Tensor, c0: Tensor | None, weights: Sequence[Tensor], bias: bool, proj: bool,
           num_layers: int, dropout: float, training: bool, num_dirs: int, batch_sizes: Tensor | None,
           backend: Backend):
    """Layers x directions over time-major (or packed) x; returns (output, h_n, c_n or None)."""
    h_n, c_n = [], []
    states = (h0,) if c0 is None else (h0, c0)
    cpp_op = backend is Backend.CPU and not torch.compiler.is_compiling()  # its C++ node decides itself
    grad = (backend is not Backend.TORCH and not cpp_op and torch.is_grad_enabled()
            and any(t.requires_grad for t in (x, *states, *weights)))
    for layer in range(num_layers):
        if layer and dropout and training:
            x = F.dropout(x, dropout, training=True)
        outs = []
        for d in range(num_dirs):
            idx = layer * num_dirs + d
            args = (*_layer(weights, idx, bias, proj), h0[idx], None if c0 is None else c0[idx], batch_sizes, d == 1)
            if backend is Backend.TORCH:
                res = reference_layer(mode, x, *args)[:3 if mode == "lstm" else 2]
            elif cpp_op:
                res = torch.ops.fastrnn.layer(mode, x, *args)  # LayerFunction's node in C++ (or its forward alone)
            elif grad:
                res = LayerFunction.apply(mode, backend.value, x, *args)
            else:
                res = fused_layer(mode, backend.value, x, *args, save=False)[0]
            outs.append(res[0])
            h_n.append(res[1])
            if mode == "lstm":
                c_n.append(res[2])
        x = outs[0] if num_dirs == 1 else torch.cat(outs, -1)
    # One layer-direction: its state as a [1, B, size] view, cheaper than stack's copy and autograd node.
    def states_of(parts: list[Tensor]) -> Tensor:
        return parts[0].unsqueeze(0) if len(parts) == 1 else torch.stack(parts)
    return x, states_of(h_n), states_of(c_n) if c_n else None


def _state_list(mode: str, hx) -> list[Tensor] | None:
    """hx as fastrnn::rnn takes it ([] for None), or None where functional.py's checks must judge it."""
    if hx is None:
        return []
    if mode != "lstm":
        return [hx] if isinstance(hx, Tensor) else None
    if type(hx) in (tuple, list) and len(hx) == 2 and all(isinstance(h, Tensor) for h in hx):
        return list(hx)
    return None


def _runs_in_cpp(input, backend) -> bool:
    """Whether fastrnn::rnn (csrc/rnn.cpp) runs the whole call: input (a tensor, or a PackedSequence's data)
    with something to compute, eager, without autocast, on the cpu backend."""
    return (isinstance(input, Tensor) and input.is_cpu and input.numel() != 0
            and not torch.compiler.is_compiling() and not torch.is_autocast_enabled("cpu")
            and select(input, backend) is Backend.CPU)


def _forward(mode: str, input, hx, weights: Sequence[Tensor], bias: bool, num_layers: int, dropout: float,
             training: bool, bidirectional: bool, batch_first: bool, backend):
    num_dirs = 2 if bidirectional else 1
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
    if not 0 <= dropout <= 1:
        raise ValueError(f"dropout should be a number in range [0, 1], got {dropout}")
    states = _state_list(mode, hx)
    packed = isinstance(input, PackedSequence)
    if states is not None and _runs_in_cpp(input.data if packed else input, backend):
        fields = tuple(input)[1:] if packed else ()  # batch_sizes, sorted_indices, unsorted_indices
        out, h_n, c_n = torch.ops.fastrnn.rnn.default(mode, input.data if packed else input, states, weights, bias,
                                                      num_layers, dropout, training, bidirectional, batch_first,
                                                      *fields)
        return PackedSequence(out, *fields) if packed else out, ((h_n, c_n) if mode == "lstm" else h_n)
    proj = _check_weights(mode, weights, bias, num_layers, num_dirs)
    w_hh0 = weights[1]
    hidden = w_hh0.shape[0] // _GATES[mode]
    out_size = w_hh0.shape[1]
    input_size = weights[0].shape[1]
    name = _NAMES[mode]

    if packed:
        x, batch_sizes, sorted_indices, unsorted_indices = input
        if x.dim() != 2:
            raise RuntimeError(f"input must have 2 dimensions, got {x.dim()}")
        batch = int(batch_sizes[0])
    else:
        if not isinstance(input, Tensor):
            raise TypeError(f"input must be a Tensor or PackedSequence, got {type(input).__name__}")
        if input.dim() not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        batch_sizes = sorted_indices = unsorted_indices = None
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if batch_first and batched:
            x = x.transpose(0, 1)
        if x.shape[0] == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        batch = x.shape[1]
    if x.shape[-1] != input_size:
        raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {input_size}, got {x.shape[-1]}")
    autocast = _autocast_dtype(x)
    if autocast is None and x.dtype != w_hh0.dtype:
        raise ValueError(f"RNN input dtype ({x.dtype}) does not match weight dtype ({w_hh0.dtype}). "
                         f"Convert input: input.to({w_hh0.dtype}), or convert model: model.to({x.dtype})")
    for i, w in enumerate(weights):
        if w.device != x.device:
            raise RuntimeError(f"weights[{i}] is on {w.device} but input is on {x.device}")
    compute = autocast or x.dtype
    if autocast is not None:
        x, weights = x.to(compute), [w.to(compute) for w in weights]

    # Hidden state: torch.nn's checks and messages; zeros for hx=None.
    states = 2 if mode == "lstm" else 1
    if hx is None:
        hx = tuple(x.new_zeros(num_layers * num_dirs, batch, size) for size in (out_size, hidden)[:states])
    else:
        hx = tuple(hx) if mode == "lstm" else (hx,)
        if len(hx) != states:
            raise RuntimeError(f"hx must be a tuple of {states} tensors (h_0, c_0), got {len(hx)}")
        want = 2 if (not packed and not batched) else 3
        for i, h in enumerate(hx):
            if not isinstance(h, Tensor) or h.dim() != want:
                got = h.dim() if isinstance(h, Tensor) else type(h).__name__
                raise RuntimeError(f"For {'unbatched 2-D' if want == 2 else 'batched 3-D'} input, "
                                   f"hx{'[%d]' % i if states > 1 else ''} should also be {want}-D but got {got}")
        if want == 2:
            hx = tuple(h.unsqueeze(1) for h in hx)
        for i, (h, size) in enumerate(zip(hx, (out_size, hidden))):
            label = f"hidden[{i}]" if states > 1 else "hidden"
            _check_state(label, h, (num_layers * num_dirs, batch, size), x, check_dtype=autocast is None)
        if sorted_indices is not None:
            hx = tuple(h.index_select(1, sorted_indices) for h in hx)
        hx = tuple(h if h.dtype == compute and h.is_contiguous() else h.to(compute).contiguous() for h in hx)
    h0, c0 = hx[0], (hx[1] if mode == "lstm" else None)

    chosen = _select(x, backend) if x.shape[:-1].numel() else Backend.TORCH  # an empty batch has nothing to fuse
    out, h_n, c_n = _stack(mode, x, h0, c0, weights, bias, proj, num_layers, dropout, training, num_dirs,
                           batch_sizes, chosen)

    if unsorted_indices is not None:
        h_n = h_n.index_select(1, unsorted_indices)
        c_n = c_n.index_select(1, unsorted_indices) if c_n is not None else None
    if packed:
        out = PackedSequence(out, batch_sizes, sorted_indices, unsorted_indices)
    elif not batched:
        out, h_n = out.squeeze(1), h_n.squeeze(1)
        c_n = c_n.squeeze(1) if c_n is not None else None
    elif batch_first:
        out = out.transpose(0, 1)
    return out, ((h_n, c_n) if mode == "lstm" else h_n)


def rnn_tanh(input, hx, weights, bias=True, num_layers=1, dropout=0.0, training=False, bidirectional=False,
             batch_first=False, *, backend=None):
    """Elman RNN with tanh: ``(output, h_n)`` exactly as ``torch.nn.RNN`` returns them."""
    return _forward("rnn_tanh", input, hx, weights, bias, num_layers, dropout, training, bidirectional,
                    batch_first, backend)


def rnn_relu(input, hx, weights, bias=True, num_layers=1, dropout=0.0, training=False, bidirectional=False,
             batch_first=False, *, backend=None):
    """Elman RNN with ReLU: ``(output, h_n)`` exactly as ``torch.nn.RNN(nonlinearity="relu")`` returns them."""
    return _forward("rnn_relu", input, hx, weights, bias, num_layers, dropout, training, bidirectional,
                    batch_first, backend)


def lstm(input, hx, weights, bias=True, num_layers=1, dropout=0.0, training=False, bidirectional=False,
         batch_first=False, *, backend=None):
    """LSTM (with projections when the weights carry w_hr): ``(output, (h_n, c_n))`` as ``torch.nn.LSTM``."""
    return _forward("lstm", input, hx, weights, bias, num_layers, dropout, training, bidirectional,
                    batch_first, backend)


def gru(input, hx, weights, bias=True, num_layers=1, dropout=0.0, training=False, bidirectional=False,
        batch_first=False, *, backend=None):
    """GRU: ``(output, h_n)`` exactly as ``torch.nn.GRU`` returns them."""
    return _forward("gru", input, hx, weights, bias, num_layers, dropout, training, bidirectional,
                    batch_first, backend)


def cell(mode: str, input: Tensor, hx, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
         *, backend=None):
    """One fused step of a ``*Cell``: batched [B, I] (or unbatched [I]) input, state of the same rank."""
    states = _state_list(mode, hx)
    if states is not None and _runs_in_cpp(input, backend):
        h, c = torch.ops.fastrnn.cell.default(mode, input, states, w_ih, w_hh, b_ih, b_hh)
        return (h, c) if mode == "lstm" else h
    name = {"rnn_tanh": "RNNCell", "rnn_relu": "RNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}[mode]
    if input.dim() not in (1, 2):
        raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
    given = None if hx is None else (tuple(hx) if mode == "lstm" else (hx,))
    for i, h in enumerate(given or ()):
        if h.dim() not in (1, 2):
            label = f"hx[{i}]" if mode == "lstm" else "hidden"
            raise ValueError(f"{name}: Expected {label} to be 1D or 2D, got {h.dim()}D instead")
    # One step of one layer: [1, B, I] batched, or [1, I] unbatched, with the state one rank up.
    state = None if given is None else tuple(h.unsqueeze(0) for h in given)
    weights = [w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None else [])
    _, h_n = _forward(mode, input.unsqueeze(0), state if mode == "lstm" or state is None else state[0], weights,
                      b_ih is not None, 1, 0.0, False, False, False, backend)
    return (h_n[0][0], h_n[1][0]) if mode == "lstm" else h_n[0]
