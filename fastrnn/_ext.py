"""Loads the compiled extension (``fastrnn._C``) if it was built; fastrnn works without it."""
from __future__ import annotations

import functools

import torch


@functools.cache
def load_error() -> str | None:
    try:
        from . import _C  # noqa: F401  (loading the library runs its TORCH_LIBRARY registrations)
    except ImportError as e:
        return f"fastrnn._C could not be imported: {e}"
    return None


# The registrations are made once, when _C loads: what they are does not change after the first ask.
@functools.cache
def has_cpu() -> bool:
    return load_error() is None and torch._C._dispatch_has_kernel_for_dispatch_key(
        "fastrnn::lstm_forward", "CPU")


@functools.cache
def has_cuda() -> bool:
    return load_error() is None and torch._C._dispatch_has_kernel_for_dispatch_key(
        "fastrnn::lstm_forward", "CUDA")
