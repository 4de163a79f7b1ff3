"""What must happen before the first `import mxnet`; the package imports this module first.

1. mxnet 1.9.1 reads `numpy.bool`, which NumPy 1.24 removed (apache/mxnet#21165): with
   NumPy 1.24-1.26 (Python 3.12 has no NumPy 1.23 wheels) the documented one-line alias
   `numpy.bool = numpy.bool_` makes it import. A no-op on NumPy 1.23, which still has the
   alias; NumPy 2 also removed `np.PZERO` and cannot be patched this way.
2. A GPU build (mxnet-cu112) links CUDA 11 libraries at load time; when they come from pip's
   `nvidia-*-cu11` wheels they must be loaded first (see device.preload_cuda_libraries).
"""
import numpy
from numpy.lib import NumpyVersion

from .device import preload_cuda_libraries

# Version first: on NumPy 1.20-1.23 even reading `numpy.bool` emits a DeprecationWarning.
_VERSION = NumpyVersion(numpy.__version__)
if "1.24.0" <= _VERSION < "2.0.0" and not hasattr(numpy, "bool"):
    numpy.bool = numpy.bool_  # apache/mxnet#21165

preload_cuda_libraries()
