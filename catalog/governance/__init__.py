"""The sharing workflow: access requests, reviews, decisions, backflow, corrections.

Rules, from DOMAIN.md:

- UNCONDITIONAL resources are granted at once on request (logged, no human step);
  CONDITIONAL ones need the owning department's approval; NOT_SHARED ones are refused at
  once, citing the legal basis in the catalog. CORE data never leaves its owner;
  IMPORTANT data always needs an approval, whatever its sharing type.
- A request names the fields it needs (minimum necessary), its purpose, its legal basis
  and how long. It goes SUBMITTED -> UNDER_REVIEW (the platform's compliance review,
  which can be switched off) -> PENDING_PROVIDER -> APPROVED or REJECTED. A rejection
  needs a written reason. An approval may be narrower than the request, never wider.
- Four eyes: only data officers of the owning department decide; platform officers run
  the review; nobody decides a request of their own department.
- Each step is due within working days; late steps are overdue.
- Data backflow (数据回流): a district or town asks for its own region's rows of an upper
  level's resource; proactive backflow (主动式数据回流) gives an enrolled district its
  rows of every eligible resource without a request.
- Corrections (疑义数据): a receiving department flags a wrong record; the provider answers.

One module per concept: ``requests`` (submitting, routing, reading), ``decisions``
(review, approval, rejection), ``grants`` (the one check of what a grant may deliver,
and revocation), ``backflow`` (eligibility, enrolments, the effective grant),
``corrections`` (flagged records) and ``visibility`` (who sees which rows); ``rules``
holds the settings and the checks the steps share, ``base`` the state they share, and
``workflow`` composes them into :class:`Governance`.
"""

from catalog.governance.rules import MAX_DURATION_DAYS, PLATFORM, GovernanceRules
from catalog.governance.workflow import Governance

__all__ = ["MAX_DURATION_DAYS", "PLATFORM", "Governance", "GovernanceRules"]
