"""Where the PyTorch backend runs: 'cpu' or 'gpu' (CUDA), decided once per model.

The GPU path also turns TF32 off, so cuBLAS and cuDNN compute in full FP32 like MXNet and the
NumPy reference do.
"""
from __future__ import annotations

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


def torch_device(device: Device | str) -> torch.device:
    """The torch.device for a device name ('cpu', 'gpu' or 'auto')."""
    return torch.device("cuda") if resolve_device(device) == "gpu" else torch.device("cpu")


def gpu_name() -> str:
    """The first CUDA GPU's name, or 'none'."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"


def _no_gpu_sentence() -> str:
    if torch.version.cuda is None:
        build = f"torch {torch.__version__} is a CPU-only build"
    else:
        build = (f"torch {torch.__version__} is built for CUDA {torch.version.cuda}, but no driver or "
                 f"visible device answered; check nvidia-smi and CUDA_VISIBLE_DEVICES")
    return f"--device gpu was requested but PyTorch sees no CUDA GPU ({build})."


def _disable_tf32() -> None:
    # PyTorch lets cuDNN RNNs (and, in old releases, matmuls) use TF32 on Ampere and newer: a
    # 10-bit mantissa that moves losses in the 3rd-4th digit, so numbers would stop being
    # comparable with MXNet and the NumPy reference (FACTS.md). The legacy flags are used on
    # purpose: in torch >= 2.9 their setters also write the new fp32_precision settings
    # consistently, whereas setting only the new ones makes any later read of
    # `torch.backends.cudnn.allow_tf32` raise "mix of the legacy and new APIs".
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
