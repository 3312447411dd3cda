"""The installed extension is the one setup.py promises: the CPU kernels always, the nvcc-built CUDA
kernels wherever a toolkit matching torch was found at install time (as in CI, which has nvcc but
no GPU). Loading fastrnn._C registers them; nothing is compiled at import."""
import os

import pytest
import torch
from torch.utils import cpp_extension

from fastrnn import _ext


def test_extension_loads_with_the_cpu_kernels():
    assert _ext.load_error() is None
    assert _ext.has_cpu()


@pytest.mark.skipif(torch.version.cuda is None or cpp_extension.CUDA_HOME is None
                    or os.environ.get("FASTRNN_BUILD_CUDA") == "0",
                    reason="no CUDA toolkit matching torch: setup.py builds without CUDA")
def test_extension_has_the_cuda_kernels_where_a_toolkit_is_found():
    assert _ext.has_cuda(), "setup.py found a CUDA toolkit, yet fastrnn._C carries no CUDA kernels"
    for op in ("rnn_tanh", "rnn_relu", "lstm", "gru"):
        for half in ("forward", "backward"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fastrnn::{op}_{half}", "CUDA")
