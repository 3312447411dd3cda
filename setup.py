"""Builds fastrnn._C: the op registrations, the fused CPU kernels and, where a CUDA toolkit
matches torch, the CUDA kernels. FASTRNN_BUILD_CUDA: 0 forces CUDA off, 1 forces it on (fail if
it cannot be built), unset decides from torch.version.cuda and the toolkit. Never from
torch.cuda.is_available(): build machines often have no GPU."""
import glob
import os

# The `nvcc` on PATH can be a wrapper script, from which torch would guess the toolkit wrongly.
if not os.environ.get("CUDA_HOME") and not os.environ.get("CUDA_PATH") and os.path.exists("/usr/local/cuda/bin/nvcc"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"

import torch  # noqa: E402
from setuptools import setup  # noqa: E402
from torch.utils import cpp_extension  # noqa: E402

CPU_SOURCES = ["csrc/registration.cpp", "csrc/layer.cpp", "csrc/rnn.cpp", "csrc/step_node.cpp",
               *sorted(glob.glob("csrc/cpu/*.cpp"))]
CUDA_SOURCES = sorted(glob.glob("csrc/cuda/*.cpp")) + sorted(glob.glob("csrc/cuda/kernels/*.cu"))


def cuda_decision() -> tuple[bool, str]:
    """(build CUDA?, why) from FASTRNN_BUILD_CUDA, torch's CUDA version, the toolkit and the sources."""
    flag = os.environ.get("FASTRNN_BUILD_CUDA", "")
    if flag not in ("", "0", "1"):
        raise RuntimeError(f"FASTRNN_BUILD_CUDA must be 0, 1 or unset, got {flag!r}")
    if flag == "0":
        return False, "FASTRNN_BUILD_CUDA=0"
    missing = []
    if torch.version.cuda is None:
        missing.append(f"torch {torch.__version__} was built without CUDA")
    if cpp_extension.CUDA_HOME is None:
        missing.append("no CUDA toolkit found (set CUDA_HOME)")
    if not CUDA_SOURCES:
        missing.append("no CUDA sources in csrc/cuda")
    if missing:
        if flag == "1":
            raise RuntimeError("FASTRNN_BUILD_CUDA=1 but CUDA cannot be built: " + "; ".join(missing))
        return False, "; ".join(missing)
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "torch's default")
    return True, f"torch CUDA {torch.version.cuda}, toolkit {cpp_extension.CUDA_HOME}, TORCH_CUDA_ARCH_LIST={arch}"


def extension():
    with_cuda, why = cuda_decision()
    print(f"fastrnn: building {'with' if with_cuda else 'WITHOUT'} CUDA ({why})", flush=True)
    # No debug info (halves compile and link time); torch's headers carry pragmas GCC does not know.
    cxx = ["-O3", "-g0", "-Wno-unknown-pragmas", "-Wno-psabi"]
    # ATen's OpenMP at::parallel_for is inline: built without -fopenmp it runs every loop on one thread.
    openmp = ["-fopenmp"] if torch.backends.openmp.is_available() else []
    kwargs = dict(name="fastrnn._C", include_dirs=[os.path.abspath("csrc")], extra_link_args=openmp)
    cxx += openmp
    if not with_cuda:
        return cpp_extension.CppExtension(sources=CPU_SOURCES, extra_compile_args={"cxx": cxx}, **kwargs)
    macro = ["-DFASTRNN_WITH_CUDA"]
    return cpp_extension.CUDAExtension(
        sources=CPU_SOURCES + CUDA_SOURCES,
        extra_compile_args={"cxx": cxx + macro, "nvcc": ["-O3"] + macro}, **kwargs)


setup(ext_modules=[extension()], cmdclass={"build_ext": cpp_extension.BuildExtension})
