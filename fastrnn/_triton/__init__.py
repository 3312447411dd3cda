"""The Triton backend: step-fused and whole-sequence kernels behind the ``fastrnn_triton::*`` ops.

``ops`` defines them (``backends.ops_for(Backend.TRITON)`` returns ``torch.ops.fastrnn_triton``); ``use_kernel`` /
``FASTRNN_TRITON_KERNEL`` force the step or sequence kernel (``choose_kernel`` decides otherwise).
"""
from .schedule import choose_kernel, use_kernel

__all__ = ["choose_kernel", "use_kernel"]
