"""The governance part of ``lijiao demo``: requests, decisions, masks and backflow.

After the main exchange, market regulation asks for residents and is approved for
fewer fields and fewer days than it asked; a district's curious request is rejected
with a reason; market regulation's delivery arrives masked; and the Jinjiang district,
enrolled in proactive backflow (主动式数据回流), receives only its own region's rows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from adapters.connection import ClientCertificate
from adapters.subscriber import ReceivedBatch, Subscriber
from catalog.models import Role
from catalog.v1 import approval_pb2 as ap
from catalog.v1 import catalog_pb2 as pb
from exchange.demo.pki import Caller, DemoPKI

RESOURCE = "PSB-RESIDENT"
JINJIANG = "510104"


@dataclass
class TourResult:
    """What the governance tour showed, for the summary."""

    approved_fields: list[str] = field(default_factory=list)
    asked_fields: list[str] = field(default_factory=list)
    approved_days: int = 0
    asked_days: int = 0
    rejection: str = ""
    masked_sample: dict[str, Any] = field(default_factory=dict)
    masked_ok: bool = False
    backflow_rows: int = 0
    backflow_foreign_rows: int = 0

    @property
    def ok(self) -> bool:
        """Whether every part behaved as the rules say."""
        return (
            bool(self.approved_fields)
            and set(self.approved_fields) < set(self.asked_fields)
            and self.approved_days < self.asked_days
            and bool(self.rejection)
            and self.masked_ok
            and self.backflow_rows > 0
            and self.backflow_foreign_rows == 0
        )


async def run_tour(
    demo_pki: DemoPKI,
    admin: Caller,
    systems: dict[str, ClientCertificate],
    records: int,
    batches: int,
    step: Any,
) -> TourResult:
    """Runs the tour against a gateway holding ``records`` residents in ``batches`` batches.

    Each principal calls on its own mutual-TLS channel, known by its certificate.
    """
    result = TourResult()
    await admin.catalog.CreateDepartment(
        pb.CreateDepartmentRequest(
            department=pb.Department(
                code="DATA-BUREAU",
                name="成都市数据局 City Data Bureau",
                level=pb.ADMINISTRATIVE_LEVEL_CITY,
                region_code="510100",
            )
        ),
    )
    wang = demo_pki.caller("wang", Role.DATA_OFFICER, department="PSB").approvals
    li = demo_pki.caller("li", Role.DATA_OFFICER, department="SAMR").approvals
    zhao = demo_pki.caller("zhao", Role.PLATFORM_OFFICER, department="DATA-BUREAU").approvals
    jinjiang = demo_pki.caller_with("JINJIANG-GRID", systems["JINJIANG-GRID"]).approvals
    step("data officers wang (PSB), li (SAMR) and platform officer zhao (data bureau)")

    result.asked_fields = ["id_number", "name", "phone", "status", "region_code"]
    result.asked_days = 365
    submitted = await li.SubmitAccessRequest(
        ap.SubmitAccessRequestRequest(
            resource=RESOURCE,
            requesting_system="SAMR-LICENCE",
            fields=result.asked_fields,
            purpose="check the identity of business licence holders",
            legal_basis="《市场主体登记管理条例》 Market Entity Registration Regulation, art. 17",
            duration_days=result.asked_days,
        ),
    )
    request_id = submitted.request.id
    step(f"li asks for {RESOURCE} ({', '.join(result.asked_fields)}; 365 days): {request_id}")
    await zhao.ReviewAccessRequest(
        ap.ReviewAccessRequestRequest(id=request_id, passed=True, reason="legal basis cited"),
    )
    approved = await wang.ApproveAccessRequest(
        ap.ApproveAccessRequestRequest(
            id=request_id,
            fields=["id_number", "name", "status"],
            duration_days=180,
            reason="phone numbers are not needed for an identity check",
        ),
    )
    result.approved_fields = list(approved.grant.fields)
    result.approved_days = approved.request.approved_duration_days
    step(
        f"zhao passes the review; wang approves fewer fields ({', '.join(result.approved_fields)})"
        f" for {result.approved_days} days: grant {approved.grant.id}"
    )

    curious = await jinjiang.SubmitAccessRequest(
        ap.SubmitAccessRequestRequest(
            resource=RESOURCE,
            requesting_system="JINJIANG-GRID",
            fields=["id_number", "name", "phone", "address"],
            purpose="general statistics",
            legal_basis="none given",
            duration_days=3650,
        ),
    )
    await zhao.ReviewAccessRequest(
        ap.ReviewAccessRequestRequest(id=curious.request.id, passed=True)
    )
    rejected = await wang.RejectAccessRequest(
        ap.RejectAccessRequestRequest(
            id=curious.request.id,
            reason="no statutory duty named; resubmit citing the duty the data serves",
        ),
    )
    result.rejection = rejected.request.decision_reason
    step(f"JINJIANG-GRID's request for all personal fields: rejected ({result.rejection})")

    first = await _receive(demo_pki, systems["SAMR-LICENCE"], 1)
    if first and first[0].records:
        sample = first[0].records[0]
        result.masked_sample = sample
        serial_id = sample.get("id_number", "")
        result.masked_ok = (
            set(sample) == {"id_number", "name", "status"}
            and "*" in serial_id
            and "*" in sample.get("name", "")
        )
        step(f"SAMR-LICENCE receives masked records, e.g. {sample}")

    await wang.SetBackflowEligibility(
        ap.SetBackflowEligibilityRequest(resource=RESOURCE, eligible=True)
    )
    await zhao.EnrolBackflow(
        ap.EnrolBackflowRequest(
            department="JINJIANG", reason="grid management needs its residents (数据回流)"
        ),
    )
    step("wang marks the registry backflow-eligible; zhao enrols Jinjiang district")
    backflow = await _receive(demo_pki, systems["JINJIANG-GRID"], batches)
    rows = [r for b in backflow for r in b.records]
    result.backflow_rows = len(rows)
    result.backflow_foreign_rows = sum(1 for r in rows if r["region_code"] != JINJIANG)
    step(
        f"JINJIANG-GRID receives {result.backflow_rows:,} of {records:,} residents by "
        f"proactive backflow, {result.backflow_foreign_rows} outside {JINJIANG}"
    )
    return result


async def _receive(
    demo_pki: DemoPKI, identity: ClientCertificate, count: int
) -> list[ReceivedBatch]:
    """Receives ``count`` deliveries (one per published batch, however many rows it kept)."""
    received: list[ReceivedBatch] = []
    subscriber = Subscriber(
        demo_pki.target,
        "",
        RESOURCE,
        ca_cert=demo_pki.ca_cert,
        client_cert=identity,
        subscription="tour",
    )

    def handle(batch: ReceivedBatch) -> None:
        received.append(batch)
        if len(received) >= count:
            subscriber.stop()

    try:
        await asyncio.wait_for(subscriber.run(handle), 120)
    finally:
        await subscriber.close()
    return received
