"""The governance part of ``lijiao demo``: requests, decisions, masks and backflow.

After the main exchange, market regulation asks for residents and is approved for
fewer fields and fewer days than it asked; a district's curious request is rejected
with a reason; market regulation's delivery arrives masked; and the Jinjiang district,
enrolled in proactive backflow (主动式数据回流), receives only its own region's rows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.connection import auth_metadata, open_channel
from adapters.subscriber import ReceivedBatch, Subscriber
from catalog.credentials import issue_token_at
from catalog.models import Role
from catalog.v1 import approval_pb2 as ap
from catalog.v1 import approval_pb2_grpc, catalog_pb2_grpc
from catalog.v1 import catalog_pb2 as pb

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
    target: str,
    ca_cert: Path | None,
    catalog_url: str,
    admin_token: str,
    system_tokens: dict[str, str],
    records: int,
    batches: int,
    step: Any,
) -> TourResult:
    """Runs the tour against a gateway holding ``records`` residents in ``batches`` batches."""
    result = TourResult()
    channel = open_channel(target, ca_cert=ca_cert)
    approvals = approval_pb2_grpc.ApprovalServiceStub(channel)
    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    await catalog.CreateDepartment(
        pb.CreateDepartmentRequest(
            department=pb.Department(
                code="DATA-BUREAU",
                name="成都市数据局 City Data Bureau",
                level=pb.ADMINISTRATIVE_LEVEL_CITY,
                region_code="510100",
            )
        ),
        metadata=auth_metadata(admin_token),
    )
    wang = auth_metadata(
        issue_token_at(catalog_url, name="wang", role=Role.DATA_OFFICER, department="PSB")
    )
    li = auth_metadata(
        issue_token_at(catalog_url, name="li", role=Role.DATA_OFFICER, department="SAMR")
    )
    zhao = auth_metadata(
        issue_token_at(
            catalog_url, name="zhao", role=Role.PLATFORM_OFFICER, department="DATA-BUREAU"
        )
    )
    step("data officers wang (PSB), li (SAMR) and platform officer zhao (data bureau)")

    result.asked_fields = ["id_number", "name", "phone", "status", "region_code"]
    result.asked_days = 365
    submitted = await approvals.SubmitAccessRequest(
        ap.SubmitAccessRequestRequest(
            resource=RESOURCE,
            requesting_system="SAMR-LICENCE",
            fields=result.asked_fields,
            purpose="check the identity of business licence holders",
            legal_basis="《市场主体登记管理条例》 Market Entity Registration Regulation, art. 17",
            duration_days=result.asked_days,
        ),
        metadata=li,
    )
    request_id = submitted.request.id
    step(f"li asks for {RESOURCE} ({', '.join(result.asked_fields)}; 365 days): {request_id}")
    await approvals.ReviewAccessRequest(
        ap.ReviewAccessRequestRequest(id=request_id, passed=True, reason="legal basis cited"),
        metadata=zhao,
    )
    approved = await approvals.ApproveAccessRequest(
        ap.ApproveAccessRequestRequest(
            id=request_id,
            fields=["id_number", "name", "status"],
            duration_days=180,
            reason="phone numbers are not needed for an identity check",
        ),
        metadata=wang,
    )
    result.approved_fields = list(approved.grant.fields)
    result.approved_days = approved.request.approved_duration_days
    step(
        f"zhao passes the review; wang approves fewer fields ({', '.join(result.approved_fields)})"
        f" for {result.approved_days} days: grant {approved.grant.id}"
    )

    curious = await approvals.SubmitAccessRequest(
        ap.SubmitAccessRequestRequest(
            resource=RESOURCE,
            requesting_system="JINJIANG-GRID",
            fields=["id_number", "name", "phone", "address"],
            purpose="general statistics",
            legal_basis="none given",
            duration_days=3650,
        ),
        metadata=auth_metadata(system_tokens["JINJIANG-GRID"]),
    )
    await approvals.ReviewAccessRequest(
        ap.ReviewAccessRequestRequest(id=curious.request.id, passed=True), metadata=zhao
    )
    rejected = await approvals.RejectAccessRequest(
        ap.RejectAccessRequestRequest(
            id=curious.request.id,
            reason="no statutory duty named; resubmit citing the duty the data serves",
        ),
        metadata=wang,
    )
    result.rejection = rejected.request.decision_reason
    step(f"JINJIANG-GRID's request for all personal fields: rejected ({result.rejection})")

    first = await _receive(target, ca_cert, system_tokens["SAMR-LICENCE"], 1)
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

    await approvals.SetBackflowEligibility(
        ap.SetBackflowEligibilityRequest(resource=RESOURCE, eligible=True), metadata=wang
    )
    await approvals.EnrolBackflow(
        ap.EnrolBackflowRequest(
            department="JINJIANG", reason="grid management needs its residents (数据回流)"
        ),
        metadata=zhao,
    )
    step("wang marks the registry backflow-eligible; zhao enrols Jinjiang district")
    backflow = await _receive(target, ca_cert, system_tokens["JINJIANG-GRID"], batches)
    rows = [r for b in backflow for r in b.records]
    result.backflow_rows = len(rows)
    result.backflow_foreign_rows = sum(1 for r in rows if r["region_code"] != JINJIANG)
    step(
        f"JINJIANG-GRID receives {result.backflow_rows:,} of {records:,} residents by "
        f"proactive backflow, {result.backflow_foreign_rows} outside {JINJIANG}"
    )
    await channel.close()
    return result


async def _receive(
    target: str, ca_cert: Path | None, token: str, count: int
) -> list[ReceivedBatch]:
    """Receives ``count`` deliveries (one per published batch, however many rows it kept)."""
    received: list[ReceivedBatch] = []
    subscriber = Subscriber(target, token, RESOURCE, ca_cert=ca_cert, subscription="tour")

    def handle(batch: ReceivedBatch) -> None:
        received.append(batch)
        if len(received) >= count:
            subscriber.stop()

    try:
        await asyncio.wait_for(subscriber.run(handle), 120)
    finally:
        await subscriber.close()
    return received
