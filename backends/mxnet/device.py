"""Where MXNet runs: 'cpu' or 'gpu', decided by running a tiny op, not by counting GPUs.

MXNet 1.9.1 is the last release. Its GPU wheels (mxnet-cu112 / -cu117) hold kernels for compute
capability 5.0-8.6 and no PTX, so on Hopper (9.0: H100, H200) it loads, sees the GPU and fails at
the first kernel with CUDA error 209. `--device gpu` then stops with one sentence; `--device auto`
warns and runs on the CPU.

MXNet is imported inside the functions: `_compat` calls `preload_cuda_libraries` before the
first `import mxnet`.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.metadata
import importlib.util
import os
import warnings

from seqcore.errors import SeqcoreError
from seqcore.specs import Device

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

_NO_GPU = ("--device gpu was requested but MXNet sees no GPU "
           "(is mxnet-cu112 installed, see the mxnet-gpu extra?).")


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


def compute_capability(index: int = 0) -> tuple[int, int] | None:
    """(major, minor) of GPU `index` read through the driver (libcuda), or None if unknown."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(device), index) != 0:
        return None
    # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76
    if (cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device) != 0
            or cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device) != 0):
        return None
    return major.value, minor.value


def _gpu_reason(error_text: str, capability: tuple[int, int] | None, version: str) -> str:
    """Why MXNet cannot use the GPU, as the first clause of a sentence."""
    text = error_text.lower()
    no_kernels = ("no kernel image" in text or "error 209" in text
                  or "invalid device function" in text)
    if no_kernels or (capability is not None and capability >= (9, 0)):
        where = (f"compute capability {capability[0]}.{capability[1]}" if capability is not None
                 else "compute capability 9.0 or newer")
        return f"MXNet {version} has no GPU kernels for this GPU ({where}, e.g. H100/H200)"
    first_line = next((line.strip() for line in error_text.splitlines() if line.strip()), "unknown error")
    return f"MXNet {version} cannot run on this GPU ({first_line})"


def describe_gpu_failure(error_text: str, compute_capability: tuple[int, int] | None,
                         version: str = "1.9.1") -> str:
    """The one-sentence message for `--device gpu` when a GPU is present but MXNet fails on it.

    Pure, so it is tested without a GPU: `error_text` is the MXNetError text of the probe op.
    """
    return f"{_gpu_reason(error_text, compute_capability, version)}; run MXNet with --device cpu."


def _probe_gpu() -> str | None:
    """Run one small op on gpu(0); the error text if it fails, else None."""
    import mxnet as mx

    try:
        (mx.nd.ones((2,), ctx=mx.gpu(0)) * 2).asnumpy()
    except mx.base.MXNetError as error:
        return str(error)
    return None


def resolve_device(device: Device | str) -> str:
    """'cpu' or 'gpu'. Explicit gpu fails with a SeqcoreError; auto falls back to cpu."""
    import mxnet as mx

    device = Device(device)
    if device is Device.CPU:
        return "cpu"
    try:
        num_gpus = mx.context.num_gpus()
    except mx.base.MXNetError:  # a GPU build without a usable driver
        num_gpus = 0
    if num_gpus == 0:
        if device is Device.GPU:
            raise SeqcoreError(_NO_GPU)
        return "cpu"  # no GPU at all: auto means cpu, nothing to warn about
    error_text = _probe_gpu()
    if error_text is None:
        return "gpu"
    capability = compute_capability()
    if device is Device.GPU:
        raise SeqcoreError(describe_gpu_failure(error_text, capability, mx.__version__))
    # The warnings module prints a given message once per process (stderr by default).
    warnings.warn(f"{_gpu_reason(error_text, capability, mx.__version__)}; "
                  "--device auto runs MXNet on the CPU.", RuntimeWarning, stacklevel=2)
    return "cpu"


def context(device: str):
    """The mx.Context for a resolved device name: mx.cpu() or mx.gpu(0)."""
    import mxnet as mx

    if device not in ("cpu", "gpu"):
        raise SeqcoreError(f"Unknown resolved device {device!r}: expected 'cpu' or 'gpu'.")
    return mx.gpu(0) if device == "gpu" else mx.cpu()


def describe(device: str) -> str:
    """A short description of a resolved device for reports, e.g. 'gpu (compute capability 8.6)'."""
    if device != "gpu":
        return f"cpu ({os.cpu_count()} cores)"
    capability = compute_capability()
    return "gpu" if capability is None else f"gpu (compute capability {capability[0]}.{capability[1]})"
