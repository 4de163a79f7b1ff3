"""Where MXNet runs: 'cpu' or 'gpu', decided by running a tiny op, not by counting GPUs.

MXNet 1.9.1 is the last release. Its GPU wheels (mxnet-cu112 / -cu117) hold kernels for compute
capability 5.0-8.6 and no PTX, so on Hopper (9.0: H100, H200) it loads, sees the GPU and fails at
the first kernel with CUDA error 209. `--device gpu` then stops with one sentence; `--device auto`
warns and runs on the CPU.

The pip CUDA libraries a GPU build needs are loaded before `import mxnet` by `_compat`, which
the package imports first.
"""
from __future__ import annotations

import ctypes
import os
import warnings

import mxnet as mx

from seqcore.backend import Device
from seqcore.errors import SeqcoreError

_NO_GPU = ("--device gpu was requested but MXNet sees no GPU "
           "(is mxnet-cu112 installed, see the mxnet-gpu extra?).")


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


def _gpu_reason(error_text: str, capability: tuple[int, int] | None) -> str:
    """Why MXNet cannot use the GPU, as the first clause of a sentence."""
    text = error_text.lower()
    no_kernels = ("no kernel image" in text or "error 209" in text
                  or "invalid device function" in text)
    if no_kernels or (capability is not None and capability >= (9, 0)):
        where = (f"compute capability {capability[0]}.{capability[1]}" if capability is not None
                 else "compute capability 9.0 or newer")
        return f"MXNet {mx.__version__} has no GPU kernels for this GPU ({where}, e.g. H100/H200)"
    # MXNet's text is a C++ traceback whose last line carries the message.
    lines = [line.strip() for line in error_text.splitlines() if line.strip()]
    last = lines[-1].removeprefix("MXNetError: ")[:200] if lines else "unknown error"
    return f"MXNet {mx.__version__} cannot run on this GPU ({last})"


def describe_gpu_failure(error_text: str, compute_capability: tuple[int, int] | None) -> str:
    """The one-sentence message for `--device gpu` when a GPU is present but MXNet fails on it.

    Pure, so it is tested without a GPU: `error_text` is the MXNetError text of the probe op.
    """
    return f"{_gpu_reason(error_text, compute_capability)}; run MXNet with --device cpu."


def _probe_gpu() -> str | None:
    """Run one small op on gpu(0); the error text if it fails, else None."""
    try:
        (mx.nd.ones((2,), ctx=mx.gpu(0)) * 2).asnumpy()
    except mx.base.MXNetError as error:
        return str(error)
    return None


def resolve_device(device: Device | str) -> str:
    """'cpu' or 'gpu'. Explicit gpu fails with a SeqcoreError; auto falls back to cpu."""
    try:
        device = Device(device)
    except ValueError:
        choices = ", ".join(member.value for member in Device)
        raise SeqcoreError(f"Unknown device {device!r}: choose one of {choices}.") from None
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
        raise SeqcoreError(describe_gpu_failure(error_text, capability))
    # The warnings module prints a given message once per process (stderr by default).
    warnings.warn(f"{_gpu_reason(error_text, capability)}; "
                  "--device auto runs MXNet on the CPU.", RuntimeWarning)
    return "cpu"


def context(device: str):
    """The mx.Context for a resolved device name: mx.cpu() or mx.gpu(0)."""
    if device not in ("cpu", "gpu"):
        raise SeqcoreError(f"Unknown resolved device {device!r}: expected 'cpu' or 'gpu'.")
    return mx.gpu(0) if device == "gpu" else mx.cpu()


def describe(device: str) -> str:
    """A short description of a resolved device for reports, e.g. 'gpu (compute capability 8.6)'."""
    if device != "gpu":
        return f"cpu ({os.cpu_count()} cores)"
    capability = compute_capability()
    return "gpu" if capability is None else f"gpu (compute capability {capability[0]}.{capability[1]})"
