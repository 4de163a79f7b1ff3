"""GPU problems become one sentence. The messages are pure functions of the error text and the
compute capability, so they are tested here without a GPU (each backend in its own process)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import python, require_backend

pytestmark = pytest.mark.slow  # every test here runs a framework in a subprocess

HOPPER_ERROR = ("MXNetError: Check failed: err == cudaSuccess (209 vs. 0) : "
                "CUDA error 209: no kernel image is available for execution on the device")


def describe(backend: str, error_text: str, capability) -> str:
    code = ("import json, sys\n"
            f"from backends.{backend}.device import describe_gpu_failure\n"
            f"print(json.dumps(describe_gpu_failure({error_text!r}, {capability!r})))")
    return json.loads(python("-c", code, check=True).stdout)


def test_mxnet_on_hopper_says_so_in_one_sentence() -> None:
    require_backend("mxnet")  # the Hopper limit is MXNet's: its wheels stop at compute capability 8.6
    message = describe("mxnet", HOPPER_ERROR, (9, 0))
    assert "no GPU kernels" in message and "compute capability 9.0" in message
    assert "--device cpu" in message and message.endswith(".") and "\n" not in message


def test_mxnet_knows_hopper_by_capability_alone() -> None:
    require_backend("mxnet")
    assert "no GPU kernels" in describe("mxnet", "", (9, 0))
    assert "no GPU kernels" not in describe("mxnet", "out of memory", (8, 6))


def test_other_gpu_failures_keep_their_reason(backend_name: str) -> None:
    message = describe(backend_name, "CUDA error: out of memory", (8, 0))
    assert "out of memory" in message and "--device cpu" in message and "\n" not in message
