"""The PyTorch backend of seqcore: torch.nn models that load and export canonical NumPy parameters.

Imported only when chosen by name (`seqcore.backend.load_backend("torch")`); never load it in a
process that has imported MXNet. Mirrors `backends.mxnet` file for file and class for class.
"""
from .backend import Backend, create_backend
from .concise import ConciseRecurrent
from .model import SequenceModel
from .scratch import ScratchGRUCell, ScratchLSTMCell, ScratchRecurrent, ScratchRNNCell

__all__ = ["Backend", "create_backend", "SequenceModel", "ScratchRNNCell", "ScratchGRUCell",
           "ScratchLSTMCell", "ScratchRecurrent", "ConciseRecurrent"]
