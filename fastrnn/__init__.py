"""fastrnn: fused RNN / LSTM / GRU kernels behind drop-in replacements for torch.nn's recurrent layers."""
from . import _ext, autograd, functional, ops
from .backends import Backend, available_backends, use_backend
from .cache import cached_bytes, empty_cache
from .convert import convert
from .modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

if _ext.load_error() is None:
    ops.register_fakes("fastrnn")
    autograd.register_reference_grads("fastrnn")

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "functional", "use_backend",
           "available_backends", "Backend", "convert", "empty_cache", "cached_bytes"]
