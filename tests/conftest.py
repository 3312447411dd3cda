import importlib.util
import os

import torch

# Triton's interpreter must be chosen before triton is first imported; with no GPU it runs on CPU tensors.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from fastrnn import backends  # noqa: E402
from fastrnn.backends import Backend  # noqa: E402

HAS_GPU = torch.cuda.is_available()


def _interpreter_rounds_bfloat16_to_nearest() -> None:
    """Triton's interpreter converts float32 to bfloat16 by truncation (its cast passes no rounding
    mode), a GPU rounds to nearest even: interpreted bf16 kernels would carry a bias no GPU has, ~2-3x
    the error of the same kernels compiled. The tests model the GPU, so the cast rounds as torch does."""
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    truncating = builder.cast_impl

    def cast_impl(self, src, dst_type):
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            rounded = torch.from_numpy(np.ascontiguousarray(src.data)).to(torch.bfloat16).view(torch.uint16)
            return interpreter.TensorHandle(rounded.numpy().reshape(src.data.shape), dst_type.scalar)
        return truncating(self, src, dst_type)

    builder.cast_impl = cast_impl


if backends.triton_interpreted() and importlib.util.find_spec("triton") is not None:
    _interpreter_rounds_bfloat16_to_nearest()


def _backend_param(b: Backend):
    """A pytest param for one fused backend, with its marker and a skip when it cannot run here."""
    marks = {
        Backend.CPU: [],
        Backend.CUDA: [pytest.mark.cuda],
        Backend.CUDA_EMULATED: [pytest.mark.emulated],
        Backend.TRITON: [pytest.mark.triton],
    }[b]
    device = "cuda" if b is Backend.CUDA or (b is Backend.TRITON and HAS_GPU) else "cpu"
    if device == "cuda" and not HAS_GPU:
        reason = "needs a CUDA GPU"
    else:
        reason = backends.why_not(b, torch.empty(0, device=device))
    if reason is not None:
        marks = marks + [pytest.mark.skip(reason=reason)]
    return pytest.param((b, device), id=b.value, marks=marks)


FUSED = [_backend_param(b) for b in (Backend.CPU, Backend.CUDA_EMULATED, Backend.TRITON, Backend.CUDA)]


@pytest.fixture(params=FUSED)
def fused(request):
    """(Backend, device) of every fused backend that can run here."""
    return request.param


def pytest_configure(config):
    for name, text in [("cuda", "needs a CUDA GPU"), ("triton", "Triton kernels (interpreted on CPU without a GPU)"),
                       ("emulated", "CUDA kernels on the SIMT emulator"), ("slow", "long sweeps kept out of CI")]:
        config.addinivalue_line("markers", f"{name}: {text}")
