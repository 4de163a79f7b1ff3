"""seqcore.distributed.Communicator on PyTorch: DistributedDataParallel over gloo (CPU) or NCCL (GPU).

Started by torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; any number of nodes through its
rendezvous). DDP sums the gradients during backward through a communication hook that first
multiplies each bucket by this worker's share of the batch's rows (DDP's own hook divides by the
world size: the same for an even split, exact for N a power of two).
"""
from __future__ import annotations

import datetime
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from seqcore.errors import SeqcoreError
from seqcore.parallel.distributed import World

from . import device as devices
from .model import SequenceModel


class Communicator:
    def __init__(self, device: str, timeout_s: float):
        self.gpu = devices.resolve_device(device) == "gpu"  # as the backend will decide it
        address = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        try:
            dist.init_process_group("nccl" if self.gpu else "gloo",
                                    timeout=datetime.timedelta(seconds=timeout_s))
        except Exception as error:  # DistStoreError, RuntimeError, ValueError: one sentence for each
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SeqcoreError(f"Cannot join the other workers through {address} within {timeout_s:.0f} s "
                               f"({reason}).") from None
        self.world = World(dist.get_rank(), dist.get_world_size())
        self._share = _Share()

    def wrap_model(self, model: SequenceModel) -> "_DistributedModel":
        # The models hold no buffers, so DDP's forward needs no collective (evaluation runs on every
        # rank alone through `unwrap` anyway).
        wrapped = _DistributedModel(model)
        wrapped.register_comm_hook(self._share, _weighted_sum)
        return wrapped

    def unwrap(self, model) -> SequenceModel:
        return model.module if isinstance(model, _DistributedModel) else model

    def set_weight(self, weight: float) -> None:
        self._share.weight = weight

    def sum_gradients(self, model) -> None:
        pass  # DDP's hook summed them during backward

    def all_sum(self, array: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.array(array, copy=True))
        if self.gpu:  # NCCL reduces GPU tensors only
            tensor = tensor.cuda()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu().numpy()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def create_communicator(device: str, timeout_s: float) -> Communicator:
    return Communicator(device, timeout_s)


class _DistributedModel(DistributedDataParallel):
    """DDP whose handle also answers the SequenceModel's own methods (spec, context(), begin_state,
    ...), so the backend's `backward` trains through DDP unchanged."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)  # parameters, submodules ('module')
        except AttributeError:
            return getattr(self._modules["module"], name)


class _Share:
    weight = 1.0  # this worker's rows / the batch's rows, set before every backward


def _weighted_sum(share, bucket):  # (_Share, dist.GradBucket) -> Future; DDP checks real annotations
    tensor = bucket.buffer()
    tensor.mul_(share.weight)
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda done: done.value()[0])
