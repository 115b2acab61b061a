"""The quality gate: Great Expectations suites (``expectations/``) on each bronze batch.

What enters: the bronze tables and the extract's quarantine; what leaves: a verdict per batch
(``ops.gate_verdicts``), a row per expectation (``ops.dq_results``), Data Docs, and the rows an
operator moves to quarantine. The API the pipeline calls is
:func:`lakehouse.quality.gate.run_gate` (also importable from here), which returns a
:class:`~lakehouse.quality.gate.GateResult`. Great Expectations is imported through the
``expectations`` package, which turns its usage analytics off first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GateError", "GateResult", "bench_validate", "run_gate"]


def __getattr__(name: str) -> Any:
    # Lazy: `import lakehouse.quality` stays cheap and free of import cycles.
    if name in __all__:
        from lakehouse.quality import gate

        return getattr(gate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
