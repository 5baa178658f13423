"""The demo's last stage: an auditor's view of what just happened.

An auditor, known by its client certificate, asks the AuditService for the records
exchanged per department pair and for a verification of the whole ledger, as
``lijiao audit summary`` and ``lijiao audit verify`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from catalog.v1 import audit_pb2 as pb
from exchange.demo.pki import Caller


@dataclass
class AuditResult:
    """What the auditor found."""

    pairs: list[str] = field(default_factory=list)
    entries: int = 0
    verify: str = ""
    ok: bool = False


async def run_audit(auditor: Caller, step: Callable[[str], None]) -> AuditResult:
    """Summarises the exchanges and verifies the ledger through the auditor's API."""
    stub = auditor.audit
    result = AuditResult()
    summary = await stub.SummarizeExchanges(pb.SummarizeExchangesRequest())
    totals: dict[tuple[str, str], list[int]] = {}
    for total in summary.totals:
        pair = totals.setdefault((total.provider_department, total.receiving_department), [0, 0])
        pair[0] += total.batches
        pair[1] += total.records
    result.pairs = [
        f"{provider} -> {receiver}: {records:,} records in {batches:,} "
        + ("batch" if batches == 1 else "batches")
        for (provider, receiver), (batches, records) in sorted(totals.items())
    ]
    step(f"auditor: {len(result.pairs)} department pairs exchanged records")
    verified = await stub.VerifyLedger(pb.VerifyLedgerRequest())
    result.entries = verified.entries
    result.ok = verified.ok
    result.verify = (
        f"OK: {verified.entries:,} entries and {verified.checkpoints:,} signed "
        + ("checkpoint" if verified.checkpoints == 1 else "checkpoints")
        + " verify"
        if verified.ok
        else f"BROKEN ({verified.problem}) at entry {verified.broken_sequence}: {verified.message}"
    )
    step(f"auditor: lijiao audit verify -> {result.verify}")
    return result
