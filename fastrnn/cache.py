"""The cpu backend's cache of sequence buffers (csrc/cpu/seq_cache.cpp): buffers of 1 MB and more are kept
when freed, up to 512 MB in all, and reused by later calls (fresh, they page-faulted on every call). Like
``torch.cuda.empty_cache()``, ``empty_cache()`` hands what is kept back to the system; buffers in use stay."""
from __future__ import annotations

import torch

from . import _ext


def cached_bytes() -> int:
    """Bytes of the freed buffers the cpu backend keeps for reuse (0 without the compiled extension)."""
    return torch.ops.fastrnn.cached_bytes() if _ext.has_cpu() else 0


def empty_cache() -> int:
    """Frees the buffers the cpu backend keeps for reuse; returns how many bytes that gave back."""
    return torch.ops.fastrnn.empty_cache() if _ext.has_cpu() else 0
