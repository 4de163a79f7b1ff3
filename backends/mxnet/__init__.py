"""The MXNet backend of seqcore: MXNet 1.9.1 Gluon in numpy mode (mx.np / npx).

`create_backend()` returns the seqcore.backend.Backend implementation; the model classes are
public for tests that load the same canonical parameters into scratch and concise stacks.
Imported only when chosen by name; never in one process with PyTorch.
"""
from mxnet import npx

from . import _compat  # noqa: F401  (before the first `import mxnet`: NumPy alias, CUDA libraries)

npx.set_np()  # numpy semantics for mx.np arrays and Gluon (thread-local in MXNet 1.9.1)

from .backend import Backend, create_backend  # noqa: E402
from .concise import ConciseRecurrent  # noqa: E402
from .model import SequenceModel  # noqa: E402
from .scratch import ScratchGRUCell, ScratchLSTMCell, ScratchRecurrent, ScratchRNNCell  # noqa: E402

__all__ = ["Backend", "create_backend", "SequenceModel", "ScratchRNNCell", "ScratchGRUCell",
           "ScratchLSTMCell", "ScratchRecurrent", "ConciseRecurrent"]
