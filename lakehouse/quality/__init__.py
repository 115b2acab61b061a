"""The quality gate: Great Expectations suites (``expectations/``) on each bronze batch.

Importing this package turns Great Expectations' usage analytics off, before anything imports
``great_expectations``. The API the pipeline calls is :func:`lakehouse.quality.gate.run_gate`
(also importable from here), which returns a :class:`~lakehouse.quality.gate.GateResult`.
"""

from __future__ import annotations

import os
from typing import Any

os.environ["GX_ANALYTICS_ENABLED"] = "false"

__all__ = ["GateError", "GateResult", "bench_validate", "run_gate"]


def __getattr__(name: str) -> Any:
    # Lazy: `import lakehouse.quality` stays cheap and free of import cycles.
    if name in __all__:
        from lakehouse.quality import gate

        return getattr(gate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
