"""The machine and versions a figure was measured on (throughput means little without them)."""
from __future__ import annotations

import os
import platform
from typing import Any, Mapping


def machine_info(versions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Host, processor count and library versions, merged with a backend's `versions()`."""
    import numpy

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__,
    }
    info.update(versions or {})
    return info
