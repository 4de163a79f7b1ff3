"""Where the PyTorch backend runs: 'cpu' or 'gpu' (CUDA GPU 0), mirroring backends/mxnet/device.py.

A GPU counts only if a tiny op runs on it: a wheel without kernels for the GPU's architecture
sees the GPU and fails at the first kernel. `--device gpu` then stops with one sentence and
`--device auto` warns and runs on the CPU. The GPU path also turns TF32 off, so cuBLAS and cuDNN
compute in full FP32 like MXNet and the NumPy reference do.
"""
from __future__ import annotations

import os
import warnings

import torch

from seqcore.backend import Device
from seqcore.errors import SeqcoreError


def resolve_device(device: Device | str) -> str:
    """'cpu' or 'gpu'. An unusable GPU: explicit gpu raises SeqcoreError, auto falls back to cpu."""
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
    error_text = _probe_gpu()
    if error_text is None:
        _disable_tf32()
        return "gpu"
    capability = compute_capability(0)
    if device is Device.GPU:
        raise SeqcoreError(describe_gpu_failure(error_text, capability))
    # The warnings module prints a given message once per process (stderr by default).
    warnings.warn(f"{_gpu_reason(error_text, capability)}; --device auto runs PyTorch on the CPU.",
                  RuntimeWarning, stacklevel=2)
    return "cpu"


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


def describe_gpu_failure(error_text: str, compute_capability: tuple[int, int] | None) -> str:
    """The one-sentence message for `--device gpu` when a GPU is present but PyTorch fails on it.

    Pure, so it is tested without a GPU: `error_text` is the error text of the probe op.
    """
    return f"{_gpu_reason(error_text, compute_capability)}; run PyTorch with --device cpu."


def _gpu_reason(error_text: str, capability: tuple[int, int] | None) -> str:
    """Why PyTorch cannot use the GPU, as the first clause of a sentence."""
    where = "this GPU" if capability is None else f"compute capability {capability[0]}.{capability[1]}"
    text = error_text.lower()
    if "no kernel image" in text or "invalid device function" in text or "not compatible" in text:
        # A wheel carries kernels for a fixed list of architectures (torch.cuda.get_arch_list()).
        return f"torch {torch.__version__} has no GPU kernels for {where}"
    first_line = next((line.strip() for line in error_text.splitlines() if line.strip()), "unknown error")
    return f"torch {torch.__version__} cannot run on {where} ({first_line})"


def _probe_gpu() -> str | None:
    """Run one small op on cuda:0; the error text if it fails, else None."""
    try:
        (torch.ones(2, device="cuda") * 2).cpu()
    except RuntimeError as error:  # CUDA errors (torch.AcceleratorError included) are RuntimeErrors
        return str(error)
    return None


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
