"""What every part of :class:`~catalog.governance.Governance` shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from catalog.governance.rules import GovernanceRules

if TYPE_CHECKING:
    from catalog.service import Catalog


class WorkflowBase:
    """The catalog, the rules, and who hears of grant changes: the base of each part."""

    def __init__(self, catalog: Catalog, rules: GovernanceRules | None = None) -> None:
        self.catalog = catalog
        self.rules = rules or GovernanceRules()
        self._listeners: list[Callable[[], None]] = []

    def on_grant_change(self, listener: Callable[[], None]) -> None:
        """Calls ``listener`` after every change of who may receive what."""
        self._listeners.append(listener)

    def _granted_changed(self) -> None:
        for listener in self._listeners:
            listener()
