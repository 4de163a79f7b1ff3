"""The data-parallel workers of one run (torchrun, tasks.launch): joining them before any file is
touched, agreeing on the configuration, and every rank ending with the same sentence when one
of them refused. A single process has no communicator and each step here is a no-op."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from seqcore.backend import Device
from seqcore.errors import SeqcoreError
from seqcore.parallel import distributed
from seqcore.parallel.distributed import World


class Workers:
    def __init__(self, task: str, config: Mapping[str, Any], folder: str, mode: str, batch_size: int,
                 backend: str, device: Device):
        self.task, self.config, self.folder, self.mode = task, config, folder, mode
        self.batch_size, self.backend, self.device = batch_size, backend, device
        self.comm: Optional[distributed.Communicator] = None
        self.world = World()  # this worker's rank (seqcore.parallel.distributed)
        self._closed = False

    def join(self) -> None:
        """Check that the batch splits, join the other workers (a bounded wait) and compare
        configurations."""
        size = distributed.environment_size()
        if size <= 1:
            return
        distributed.check_rows(self.batch_size, size)
        self.comm = distributed.join(self.backend, self.device.value)
        self.world = self.comm.world
        try:
            distributed.agree(self.comm, distributed.config_digest(self.task, self.config, self.folder, self.mode))
        except BaseException:
            self.close()
            raise

    def refused(self, error: BaseException) -> None:
        """Tell the others that this rank refused, so that none waits for it."""
        if self.comm is None:
            return
        try:
            distributed.settle(self.comm, error)
        except SeqcoreError:
            pass  # the others are gone already: this error is still the one to tell
        self.close()

    def settle(self) -> None:
        """Every rank ends with the sentence of a rank that refused (rank 0: a folder in use)."""
        if self.comm is not None:
            distributed.settle(self.comm, None)

    def close(self) -> None:
        if self.comm is not None and not self._closed:
            self.comm.close()
            self._closed = True
