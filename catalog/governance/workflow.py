"""The workflow as one object: :class:`Governance`, composed of one part per concept."""

from __future__ import annotations

from catalog.governance.backflow import Backflow
from catalog.governance.corrections import Corrections
from catalog.governance.decisions import Decisions
from catalog.governance.grants import Grants
from catalog.governance.requests import Requests


class Governance(Requests, Decisions, Grants, Backflow, Corrections):
    """The workflow over the catalog's database.

    Each base holds one concept's methods: requests (submitting and reading),
    decisions, grants, backflow and corrections; all share the catalog, the rules and
    the grant listeners of :class:`~catalog.governance.base.WorkflowBase`.
    """
