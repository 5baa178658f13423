"""Process-wide ledger state: who is acting, and who is told of commits.

Each exists once; :mod:`catalog.ledger` re-exports these same objects.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping

COMMIT_HOOKS: list[Callable[[Mapping[str, int]], None]] = []
"""Called with the entries per kind that a catalog transaction committed (for metrics)."""


def committed(counts: Mapping[str, int]) -> None:
    """Tells :data:`COMMIT_HOOKS` about committed entries."""
    for hook in COMMIT_HOOKS:
        hook(counts)


ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("lijiao_ledger_actor", default="")
"""The principal on whose behalf the current code runs (set by the RPC layer)."""
