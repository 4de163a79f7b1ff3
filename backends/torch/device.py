"""Where the PyTorch backend runs: 'cpu' or 'gpu' (CUDA), decided once per model.

The GPU path also turns TF32 off, so cuBLAS and cuDNN compute in full FP32 like MXNet and the
NumPy reference do.
"""
from __future__ import annotations

import os

import torch

from seqcore.errors import SeqcoreError
from seqcore.specs import Device


def resolve_device(device: Device | str) -> str:
    """'cpu' or 'gpu'; AUTO picks the GPU when PyTorch sees one; GPU without CUDA raises."""
    try:
        device = Device(device)
    except ValueError:
        choices = ", ".join(member.value for member in Device)
        raise SeqcoreError(f"Unknown device {device!r}: choose one of {choices}.") from None
    if device is Device.CPU:
        return "cpu"
    if not torch.cuda.is_available():
        if device is Device.GPU:
            raise SeqcoreError(_no_gpu_sentence())
        return "cpu"
    _disable_tf32()
    return "gpu"


def context(device: str) -> torch.device:
    """The torch.device for a resolved device name: cpu or cuda (GPU 0)."""
    if device not in ("cpu", "gpu"):
        raise SeqcoreError(f"Unknown resolved device {device!r}: expected 'cpu' or 'gpu'.")
    if device == "cpu":
        return torch.device("cpu")
    resolve_device(Device.GPU)  # a clear sentence without CUDA, and TF32 off in this process
    return torch.device("cuda", 0)


def describe(device: str) -> str:
    """For reports: 'gpu (NVIDIA H100 80GB HBM3, compute capability 9.0)', 'cpu (2 cores, 2 threads)'."""
    if device != "gpu" or not torch.cuda.is_available():
        return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    major, minor = compute_capability(0)
    return f"gpu ({torch.cuda.get_device_name(0)}, compute capability {major}.{minor})"


def compute_capability(index: int = 0) -> tuple[int, int] | None:
    """(major, minor) of CUDA GPU `index`, or None without one."""
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    return torch.cuda.get_device_capability(index)


def _no_gpu_sentence() -> str:
    if torch.version.cuda is None:
        build = f"torch {torch.__version__} is a CPU-only build"
    else:
        build = (f"torch {torch.__version__} is built for CUDA {torch.version.cuda}, but no driver or "
                 f"visible device answered; check nvidia-smi and CUDA_VISIBLE_DEVICES")
    return f"--device gpu was requested but PyTorch sees no CUDA GPU ({build})."


def _disable_tf32() -> None:
    # PyTorch lets cuDNN RNNs (and, before torch 1.12, matmuls) use TF32 on Ampere and newer:
    # a 10-bit mantissa, relative error ~1e-3 per product, far outside the 1e-5 to which runs are
    # compared with MXNet and the NumPy reference (FACTS.md). The legacy flags are used on
    # purpose: in torch >= 2.9 their setters also write the new fp32_precision settings
    # consistently, whereas setting only the new ones makes any later read of
    # `torch.backends.cudnn.allow_tf32` raise "mix of the legacy and new APIs".
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
