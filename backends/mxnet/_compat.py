"""What must happen before the first `import mxnet`; the package imports this module first.

1. mxnet 1.9.1 reads `numpy.bool`, which NumPy 1.24 removed (apache/mxnet#21165): with
   NumPy 1.24-1.26 (Python 3.12 has no NumPy 1.23 wheels) the documented one-line alias
   `numpy.bool = numpy.bool_` makes it import. A no-op on NumPy 1.23, which still has the
   alias; NumPy 2 also removed `np.PZERO` and cannot be patched this way.
2. A GPU build (mxnet-cu112) links CUDA 11 libraries at load time; when they come from pip's
   `nvidia-*-cu11` wheels they must be loaded first, globally and in dependency order.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.metadata
import importlib.util
import os

import numpy
from numpy.lib import NumpyVersion

# pip's nvidia-*-cu11 wheels that libmxnet.so (mxnet-cu112) links against, in dependency order:
# (folder under site-packages/nvidia, file pattern).
_CUDA_LIBRARIES = (
    ("cuda_runtime", "libcudart.so.11*"),
    ("cuda_nvrtc", "libnvrtc-builtins.so*"),
    ("cuda_nvrtc", "libnvrtc.so.11*"),
    ("nvtx", "libnvToolsExt.so.1*"),
    ("cublas", "libcublasLt.so.11*"),
    ("cublas", "libcublas.so.11*"),
    ("cufft", "libcufft.so.10*"),
    ("curand", "libcurand.so.10*"),
    ("cusparse", "libcusparse.so.11*"),
    ("cusolver", "libcusolver.so.11*"),  # needs cublas and cusparse; MXNet opens a handle per stream
    ("cudnn", "libcudnn_ops_infer.so.8*"),  # cuDNN 8 opens its sub-libraries lazily: load them first
    ("cudnn", "libcudnn_ops_train.so.8*"),
    ("cudnn", "libcudnn_cnn_infer.so.8*"),
    ("cudnn", "libcudnn_cnn_train.so.8*"),
    ("cudnn", "libcudnn_adv_infer.so.8*"),
    ("cudnn", "libcudnn_adv_train.so.8*"),
    ("cudnn", "libcudnn.so.8*"),
    ("nccl", "libnccl.so.2*"),
)


def _is_gpu_build() -> bool:
    """True for an mxnet-cu* distribution, read from package metadata without importing mxnet."""
    try:
        importlib.metadata.distribution("mxnet")
        return False  # the CPU wheel is named plain `mxnet`
    except importlib.metadata.PackageNotFoundError:
        names = importlib.metadata.packages_distributions().get("mxnet", [])
        return any(name.lower().startswith("mxnet-cu") for name in names)


def preload_cuda_libraries() -> list[str]:
    """Load pip's CUDA 11 libraries globally so a GPU build imports without a CUDA toolkit.

    A no-op (returns []) on CPU builds and where the nvidia-*-cu11 wheels are absent; a library
    that fails to load is skipped, so `import mxnet` reports the real problem. Returns the paths
    loaded.
    """
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations or not _is_gpu_build():
        return []
    roots = list(spec.submodule_search_locations)  # a namespace package may span folders
    loaded = []
    for folder, pattern in _CUDA_LIBRARIES:
        for root in roots:
            for path in sorted(glob.glob(os.path.join(root, folder, "lib", pattern))):
                try:
                    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                    loaded.append(path)
                except OSError:
                    pass
    return loaded


# Version first: on NumPy 1.20-1.23 even reading `numpy.bool` emits a DeprecationWarning.
_VERSION = NumpyVersion(numpy.__version__)
if "1.24.0" <= _VERSION < "2.0.0" and not hasattr(numpy, "bool"):
    numpy.bool = numpy.bool_  # apache/mxnet#21165

preload_cuda_libraries()
