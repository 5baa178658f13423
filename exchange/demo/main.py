"""``lijiao demo``: a whole exchange between city departments, on this machine.

The public security bureau (市公安局) publishes its resident registry; civil affairs
(市民政局) holds a grant and receives it; market regulation (市市场监管局) tries to publish
into a resource it does not own and is refused. Every record is checked on arrival.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc

from adapters.connection import ClientCertificate
from adapters.errors import GatewayRefusal
from adapters.publisher import Publisher, encode_records
from adapters.subscriber import ReceivedBatch, Subscriber
from catalog.models import Role
from catalog.v1 import catalog_pb2 as pb
from envelope.signing import Ed25519Signer
from exchange.demo.adapters import AdapterResult, run_adapters
from exchange.demo.audit import AuditResult, run_audit
from exchange.demo.governance import TourResult, run_tour
from exchange.demo.pki import DemoPKI
from exchange.server import Gateway
from exchange.settings import Settings

RESOURCE = "PSB-RESIDENT"
LICENCES = 5_000

RESIDENT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Resident",
    "namespace": "cn.gov.chengdu.psb",
    "doc": "常住人口登记 resident registration",
    "fields": [
        {"name": "serial", "type": "long", "doc": "registration number"},
        {"name": "id_number", "type": "string", "doc": "公民身份号码 citizen ID"},
        {"name": "name", "type": "string", "doc": "姓名"},
        {"name": "phone", "type": ["null", "string"], "default": None},
        {
            "name": "address",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [
                    {"name": "street", "type": "string"},
                    {"name": "building", "type": ["null", "string"], "default": None},
                ],
            },
        },
        {"name": "region_code", "type": "string", "doc": "行政区划代码"},
        {
            "name": "status",
            "type": {
                "type": "enum",
                "name": "Status",
                "symbols": ["ACTIVE", "MOVED_OUT", "DECEASED"],
            },
        },
        {"name": "registered_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "subsidy",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        },
        {"name": "household", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}

_DISTRICTS = ["510104", "510105", "510106", "510107", "510108"]
_STREETS = ["人民南路", "春熙路", "天府大道", "蜀都大道", "红星路"]
_EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)


def resident(serial: int) -> dict[str, Any]:
    """The demo's resident number ``serial``: deterministic, so arrival can be checked."""
    district = _DISTRICTS[serial % len(_DISTRICTS)]
    return {
        "serial": serial,
        "id_number": f"{district}19{70 + serial % 30:02d}0101{serial % 10000:04d}",
        "name": "张王李赵刘"[serial % 5] + "某" * (1 + serial % 2),
        "phone": None if serial % 7 == 0 else f"138{serial % 100_000_000:08d}",
        "address": {
            "street": f"{_STREETS[serial % len(_STREETS)]}{serial % 300 + 1}号",
            "building": None if serial % 3 else f"{serial % 20 + 1}栋",
        },
        "region_code": district,
        "status": ("ACTIVE", "MOVED_OUT", "DECEASED")[0 if serial % 50 else 1],
        "registered_at": _EPOCH + datetime.timedelta(milliseconds=serial * 1_000),
        "subsidy": Decimal(serial % 100_000) / 100,
        "household": [f"{district}-{serial // 4}"] if serial % 2 else [],
    }


@dataclass
class _Tally:
    published: int = 0
    delivered: int = 0
    intact: int = 0
    corrupt: int = 0
    seen: set[int] = field(default_factory=set)


def _count_published(tally: _Tally, count: int) -> Any:
    def done(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            tally.published += count

    return done


def _step(text: str) -> None:
    print(f"  {text}", file=sys.stderr)


async def _setup(demo_pki: DemoPKI, workdir: Path) -> dict[str, Any]:
    admin = demo_pki.caller("demo-admin", Role.ADMINISTRATOR)
    stub = admin.catalog
    departments = [
        ("PSB", "成都市公安局 Public Security Bureau", pb.ADMINISTRATIVE_LEVEL_CITY, "510100"),
        ("CIVIL", "成都市民政局 Civil Affairs Bureau", pb.ADMINISTRATIVE_LEVEL_CITY, "510100"),
        ("SAMR", "成都市市场监督管理局 Market Regulation", pb.ADMINISTRATIVE_LEVEL_CITY, "510100"),
        (
            "JINJIANG",
            "锦江区人民政府 Jinjiang District",
            pb.ADMINISTRATIVE_LEVEL_DISTRICT,
            "510104",
        ),
    ]
    for code, name, level, region in departments:
        await stub.CreateDepartment(
            pb.CreateDepartmentRequest(
                department=pb.Department(code=code, name=name, level=level, region_code=region)
            ),
        )
    _step(f"registered {len(departments)} departments: " + ", ".join(d[0] for d in departments))
    systems: dict[str, tuple[Ed25519Signer, ClientCertificate]] = {}
    for code, department in (
        ("PSB-HUKOU", "PSB"),
        ("CIVIL-AID", "CIVIL"),
        ("SAMR-LICENCE", "SAMR"),
        ("JINJIANG-GRID", "JINJIANG"),
    ):
        signer = Ed25519Signer.generate()
        signer.save(workdir / f"{code.lower()}-signing-key.pem")
        await stub.CreateSystem(
            pb.CreateSystemRequest(
                system=pb.System(
                    code=code,
                    name=f"{code} system",
                    department=department,
                    signing_keys=[pb.SigningKey(public_key=signer.public_key)],
                )
            ),
        )
        systems[code] = (signer, demo_pki.certificate(code, Role.SYSTEM, system=code))
    _step("registered 4 systems with Ed25519 signing keys and client certificates (mTLS)")
    fields = [
        ("id_number", pb.SENSITIVITY_ID_NUMBER, "公民身份号码"),
        ("name", pb.SENSITIVITY_NAME, "姓名"),
        ("phone", pb.SENSITIVITY_PHONE, "联系电话"),
        ("address", pb.SENSITIVITY_ADDRESS, "住址"),
        ("region_code", pb.SENSITIVITY_NONE, "行政区划代码"),
    ]
    created = await stub.CreateResource(
        pb.CreateResourceRequest(
            resource=pb.Resource(
                code=RESOURCE,
                name="常住人口信息 Resident registry",
                owner_department="PSB",
                summary="Registered residents of the city, updated in real time.",
                format="database",
                sharing_type=pb.SHARING_TYPE_CONDITIONAL,
                sharing_conditions="For statutory duties of civil affairs (subsidy review).",
                classification=pb.CLASSIFICATION_GENERAL,
                update_cycle="real-time",
                key_fields=["id_number"],
                region_field="region_code",
                fields=[pb.FieldSpec(name=n, sensitivity=s, description=d) for n, s, d in fields],
            ),
            schema=json.dumps(RESIDENT_SCHEMA, ensure_ascii=False),
        ),
    )
    _step(
        f"registered resource {RESOURCE} (schema v1, fingerprint "
        f"{created.schema.fingerprint.hex()})"
    )
    grant = await stub.CreateGrant(
        pb.CreateGrantRequest(
            grant=pb.Grant(
                resource=RESOURCE,
                grantee_system="CIVIL-AID",
                clear_fields=[name for name, tag, _ in fields if tag != pb.SENSITIVITY_NONE],
            )
        ),
    )
    _step(
        f"granted CIVIL-AID access to {RESOURCE} in clear text for subsidy review "
        f"(grant {grant.grant.id})"
    )
    return {"systems": systems, "admin": admin}


async def _refused_publish(
    gateway: Gateway, demo_pki: DemoPKI, signer: Ed25519Signer, identity: ClientCertificate
) -> str:
    """Market regulation tries to publish residents: deny by default must refuse it."""
    async with Publisher(
        gateway.target, "", signer, ca_cert=demo_pki.ca_cert, client_cert=identity
    ) as intruder:
        try:
            await intruder.publish(RESOURCE, RESIDENT_SCHEMA, [resident(0)])
        except GatewayRefusal as refusal:
            return refusal.reason
    return ""


async def run_demo(
    *, records: int, batch_size: int, keep: Path | None, metrics_out: Path | None = None
) -> bool:
    """Runs the demo; returns True when every record arrived intact and the ledger verifies.

    ``metrics_out``: write the gateway's /metrics page, scraped at the end, to this file.
    """
    holder = None if keep else tempfile.TemporaryDirectory(prefix="lijiao-demo-")
    workdir = keep or Path(holder.name)  # type: ignore[union-attr]
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings.load(
        {
            "data_dir": workdir / "data",
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0" if metrics_out else "",
        },
        env={},
    )
    demo_pki = DemoPKI(workdir / "pki", settings.catalog_url)
    settings = dataclasses.replace(
        settings,
        tls_cert=demo_pki.gateway_cert,
        tls_key=demo_pki.gateway_key,
        client_ca=demo_pki.ca_cert,
    )
    print(f"lijiao demo: {records:,} records in batches of {batch_size:,}", file=sys.stderr)
    gateway = await Gateway.start(settings)
    demo_pki.target = gateway.target
    _step(
        f"gateway on {gateway.target} (mutual TLS: every caller presents a certificate of "
        f"the demo CA), data in {settings.data_dir}"
    )
    try:
        world = await _setup(demo_pki, workdir)
        systems: dict[str, tuple[Ed25519Signer, ClientCertificate]] = world["systems"]
        pub_signer, pub_identity = systems["PSB-HUKOU"]
        samr_signer, samr_identity = systems["SAMR-LICENCE"]
        refusal = await _refused_publish(gateway, demo_pki, samr_signer, samr_identity)
        _step(f"SAMR-LICENCE publishing into {RESOURCE}: refused ({refusal or 'NOT REFUSED!'})")
        tally = _Tally()
        subscriber = Subscriber(
            gateway.target,
            "",
            RESOURCE,
            ca_cert=demo_pki.ca_cert,
            client_cert=systems["CIVIL-AID"][1],
        )
        started = time.perf_counter()
        result = await _exchange(
            gateway, demo_pki, pub_signer, pub_identity, subscriber, tally, records, batch_size
        )
        seconds = time.perf_counter() - started
        await subscriber.close()
        print("governance: requests, decisions, masks and data backflow", file=sys.stderr)
        tour = await run_tour(
            demo_pki,
            world["admin"],
            {code: identity for code, (_signer, identity) in systems.items()},
            records,
            -(-records // batch_size),
            _step,
        )
        print("adapters: pipes between departments' own databases", file=sys.stderr)
        moved = await run_adapters(
            workdir,
            demo_pki,
            world["admin"],
            demo_pki.caller("samr-officer", Role.DATA_OFFICER, department="SAMR"),
            systems,
            LICENCES,
            _step,
        )
        print("audit: what the ledger proves", file=sys.stderr)
        await asyncio.to_thread(gateway.audit.checkpoint)
        audit = await run_audit(demo_pki.caller("demo-auditor", Role.AUDITOR), _step)
        if metrics_out is not None:
            scraped = await asyncio.to_thread(_scrape, gateway)
            await asyncio.to_thread(metrics_out.write_bytes, scraped)
            _step(f"metrics scraped into {metrics_out}")
    finally:
        await demo_pki.close()
        await gateway.stop()
        if holder is not None:
            holder.cleanup()
    ok = result and tally.intact == records and not tally.corrupt and refusal == "NOT_OWNER"
    _summary(
        tally, records, seconds, subscriber.signatures_verified, refusal, ok, tour, moved, audit
    )
    return ok and tour.ok and moved.ok and audit.ok


def _scrape(gateway: Gateway) -> bytes:
    """The gateway's /metrics page, fetched over HTTP as Prometheus would."""
    port = gateway.metrics_server.server_port
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body


async def _exchange(
    gateway: Gateway,
    demo_pki: DemoPKI,
    signer: Ed25519Signer,
    identity: ClientCertificate,
    subscriber: Subscriber,
    tally: _Tally,
    records: int,
    batch_size: int,
) -> bool:
    async def publish() -> None:
        async with Publisher(
            gateway.target,
            "",
            signer,
            ca_cert=demo_pki.ca_cert,
            client_cert=identity,
            max_in_flight=8,
        ) as publisher:
            schema = publisher.schema(RESIDENT_SCHEMA)
            acks = []
            for start in range(0, records, batch_size):
                rows = [resident(i) for i in range(start, min(start + batch_size, records))]
                batch = publisher.build(RESOURCE, schema, encode_records(schema, rows))
                future = await publisher.send(batch)
                future.add_done_callback(_count_published(tally, len(rows)))
                acks.append(future)
            await asyncio.gather(*acks)

    def receive(batch: ReceivedBatch) -> None:
        for record in batch.records:
            serial = record["serial"]
            tally.delivered += 1
            if record == resident(serial) and serial not in tally.seen:
                tally.seen.add(serial)
                tally.intact += 1
            else:
                tally.corrupt += 1
        if tally.delivered >= records:
            subscriber.stop()

    async def progress() -> None:
        began = time.perf_counter()
        tty = sys.stderr.isatty()
        while True:
            await asyncio.sleep(0.25 if tty else 2.0)
            rate = tally.delivered / max(time.perf_counter() - began, 1e-9)
            line = (
                f"  published {tally.published:>9,}/{records:,}  delivered "
                f"{tally.delivered:>9,}/{records:,}  {rate:>9,.0f} records/s"
            )
            print(
                f"\r\x1b[2K{line}" if tty else line,
                end="" if tty else "\n",
                file=sys.stderr,
                flush=True,
            )

    ticker = asyncio.create_task(progress())
    try:
        await asyncio.wait_for(asyncio.gather(publish(), subscriber.run(receive)), timeout=600)
    except (TimeoutError, GatewayRefusal, grpc.aio.AioRpcError) as exc:
        print(f"\n  exchange failed: {exc}", file=sys.stderr)
        return False
    finally:
        ticker.cancel()
        print(file=sys.stderr)
    return True


def _summary(
    tally: _Tally,
    records: int,
    seconds: float,
    verified: int,
    refusal: str,
    ok: bool,
    tour: TourResult,
    moved: AdapterResult,
    audit: AuditResult,
) -> None:
    rate = tally.delivered / seconds if seconds else 0.0
    lines = [
        "",
        "lijiao demo summary",
        f"  records published         {tally.published:>12,}",
        f"  records delivered         {tally.delivered:>12,}",
        f"  records intact            {tally.intact:>12,}  (compared field by field)",
        f"  signatures verified       {verified:>12,}  (gateway countersignatures and "
        "publisher signatures)",
        f"  rejections                {1 if refusal else 0:>12,}  ({refusal or 'none'}: "
        "deny by default)",
        f"  seconds                   {seconds:>12.2f}",
        f"  records per second        {rate:>12,.0f}  (all in this one process: generate, "
        "publish, deliver, verify, compare; benchmarks/ measures the gateway)",
        f"  approved fewer fields     {', '.join(tour.approved_fields)} (asked "
        f"{', '.join(tour.asked_fields)}), {tour.approved_days} of {tour.asked_days} days",
        f"  rejected with reason      {tour.rejection}",
        f"  masked delivery           {tour.masked_sample}",
        f"  proactive backflow        {tour.backflow_rows:,} rows to Jinjiang, "
        f"{tour.backflow_foreign_rows} outside 510104",
        f"  adapters                  {moved.civil_rows:,} of {moved.licences:,} licences from "
        f"market.db in civil.db; {moved.jinjiang_rows:,} Jinjiang licences as files",
        "  audit summary             "
        + ("\n                            ".join(audit.pairs) or "no deliveries recorded"),
        f"  lijiao audit verify       {audit.verify}",
        f"  result                    {'OK: every record arrived intact' if ok else 'FAILED'}"
        + ("; governance rules held" if tour.ok else "; GOVERNANCE CHECK FAILED")
        + ("; adapters delivered" if moved.ok else "; ADAPTER CHECK FAILED")
        + ("; the ledger verifies" if audit.ok else "; LEDGER VERIFICATION FAILED"),
    ]
    print("\n".join(lines))


__all__ = ["RESIDENT_SCHEMA", "resident", "run_demo"]
