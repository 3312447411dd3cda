"""Which implementation runs a call: one typed, pure selection function.

Precedence: the ``backend=`` argument of a module or function, then the innermost
``with use_backend(...)`` block, then the ``FASTRNN_BACKEND`` environment variable, then ``auto``.
``auto`` never fails where ``torch`` could run; a named backend that cannot run raises.
"""
from __future__ import annotations

import contextlib
import enum
import importlib.util
import os
from types import SimpleNamespace
from typing import Iterator

import torch

from . import _ext


class Backend(enum.Enum):
    CUDA = "cuda"
    CUDA_EMULATED = "cuda_emulated"
    TRITON = "triton"
    CPU = "cpu"
    TORCH = "torch"


_FUSED_CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
_CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_override: list[Backend] = []
# os.environ.get raises and catches KeyError twice for an unset variable (Mapping.get over
# _Environ.__getitem__): that made a module's call on a small layer (LSTM, T=2, B=1, H=64) ~4 us slower.
# _Environ's dict of encoded names, read directly, answers without raising.
_ENV_KEY = os.environ.encodekey("FASTRNN_BACKEND")


def _env_backend() -> str | None:
    value = os.environ._data.get(_ENV_KEY)
    return None if value is None else os.environ.decodevalue(value)


def _parse(name: str | Backend | None, origin: str) -> Backend | None:
    if name is None or isinstance(name, Backend):
        return name
    if name == "auto":
        return None
    try:
        return Backend(name)
    except ValueError:
        choices = ", ".join(["auto"] + [b.value for b in Backend])
        raise ValueError(f"fastrnn: unknown backend {name!r} in {origin}; expected one of {choices}") from None


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def why_not(backend: Backend, x: torch.Tensor) -> str | None:
    """None if ``backend`` can run a call on tensors like ``x``, else the reason it cannot."""
    if backend is Backend.TORCH:
        return None
    if torch._C._are_functorch_transforms_active():
        return ("a torch.func transform (grad, vmap, vjp, ...) is active, and the fused backends' autograd nodes "
                "do not support them")
    if backend is Backend.CPU:
        if not _ext.has_cpu():
            return f"the compiled extension is not available ({_ext.load_error()})"
        if not x.is_cpu:
            return f"input is on {x.device}, the cpu backend runs CPU tensors"
        if x.dtype not in _FUSED_CPU_DTYPES:
            return f"input dtype {x.dtype} is not supported (float32, float64, bfloat16)"
        return None
    if backend is Backend.CUDA:
        if not _ext.has_cuda():
            return "the extension was built without CUDA"
        if x.device.type != "cuda":
            return f"input is on {x.device}, the cuda backend runs CUDA tensors"
        if x.dtype not in _CUDA_DTYPES:
            return f"input dtype {x.dtype} is not supported"
        return None
    if backend is Backend.CUDA_EMULATED:
        if importlib.util.find_spec("fastrnn._emulated") is None:
            return "this fastrnn has no SIMT-emulated CUDA build (fastrnn/_emulated.py)"
        if x.device.type != "cpu":
            return f"input is on {x.device}, the emulated CUDA backend runs CPU tensors"
        if x.dtype not in _CUDA_DTYPES:
            return f"input dtype {x.dtype} is not supported"
        return None
    if backend is Backend.TRITON:
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed"
        if x.device.type != "cuda" and not (x.device.type == "cpu" and triton_interpreted()):
            return f"input is on {x.device}; triton runs CUDA tensors (or CPU tensors under TRITON_INTERPRET=1)"
        if x.dtype not in _CUDA_DTYPES:
            return f"input dtype {x.dtype} is not supported"
        return None
    raise AssertionError(backend)


def _auto(x: torch.Tensor) -> Backend:
    order = ((Backend.CUDA, Backend.TRITON) if x.is_cuda else (Backend.CPU,))
    for b in order:
        if why_not(b, x) is None:
            return b
    return Backend.TORCH


def select(x: torch.Tensor, requested: str | Backend | None = None) -> Backend:
    """The backend for a call on tensors like ``x``, or a RuntimeError saying why the requested one cannot run."""
    choice = _parse(requested, "backend=")
    origin = "backend="
    if choice is None and _override:
        choice, origin = _override[-1], "use_backend()"
    if choice is None and (env := _env_backend()):
        choice, origin = _parse(env, "FASTRNN_BACKEND"), "FASTRNN_BACKEND"
    if choice is None:
        return _auto(x)
    reason = why_not(choice, x)
    if reason is not None:
        raise RuntimeError(f"fastrnn: backend {choice.value!r} (from {origin}) cannot run this call: {reason}")
    return choice


@contextlib.contextmanager
def use_backend(name: str | Backend) -> Iterator[None]:
    """``with fastrnn.use_backend("cpu"):`` runs every fastrnn call in the block on that backend."""
    b = _parse(name, "use_backend()")
    if b is None:  # "auto" inside an override restores automatic choice
        b_list = list(_override)
        _override.clear()
        try:
            yield
        finally:
            _override[:] = b_list
        return
    _override.append(b)
    try:
        yield
    finally:
        _override.pop()


def available_backends() -> list[str]:
    """Backends that can run in this process on some device."""
    out = []
    if _ext.has_cuda() and torch.cuda.is_available():
        out.append(Backend.CUDA.value)
    if importlib.util.find_spec("triton") is not None and (torch.cuda.is_available() or triton_interpreted()):
        out.append(Backend.TRITON.value)
    if _ext.has_cpu():
        out.append(Backend.CPU.value)
    if importlib.util.find_spec("fastrnn._emulated") is not None:
        out.append(Backend.CUDA_EMULATED.value)
    out.append(Backend.TORCH.value)
    return out


def ops_for(backend: Backend) -> SimpleNamespace | object:
    """The op namespace (``rnn_tanh_forward`` ... ``gru_backward``) of a fused backend."""
    if backend in (Backend.CPU, Backend.CUDA):
        return torch.ops.fastrnn
    if backend is Backend.CUDA_EMULATED:
        from . import _emulated
        return _emulated.ops()
    if backend is Backend.TRITON:
        from ._triton import ops  # noqa: F401  (defines the fastrnn_triton ops)
        return torch.ops.fastrnn_triton
    raise ValueError(f"fastrnn: backend {backend.value!r} has no fused ops")
