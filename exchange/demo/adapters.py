"""The adapters part of ``lijiao demo``: pipes between departments' own databases.

Market regulation's own SQLite database publishes business licences through the
``sql`` source; civil affairs' own SQLite database receives them through the ``sql``
sink; the Jinjiang district, enrolled in proactive backflow, gets its region's rows as
JSON Lines files through the ``files`` sink. Nobody's system changes; three adapter
configs do the work.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.config import load
from adapters.connection import ClientCertificate
from adapters.runner import Runner
from adapters.sql import SqlSource
from catalog.v1 import approval_pb2 as ap
from catalog.v1 import catalog_pb2 as pb
from envelope.signing import Ed25519Signer
from exchange.demo.pki import Caller, DemoPKI

RESOURCE = "SAMR-LICENCE"
JINJIANG = "510104"
_REGIONS = ("510104", "510105", "510107")


@dataclass
class AdapterResult:
    """What the adapters moved, for the summary."""

    licences: int = 0
    civil_rows: int = 0
    civil_sample: list[tuple[Any, ...]] = field(default_factory=list)
    jinjiang_files: int = 0
    jinjiang_rows: int = 0
    jinjiang_foreign: int = 0
    expected_jinjiang: int = 0

    @property
    def ok(self) -> bool:
        """Every licence reached civil affairs; Jinjiang got exactly its own."""
        return (
            self.civil_rows == self.licences
            and self.jinjiang_rows == self.expected_jinjiang
            and self.jinjiang_foreign == 0
        )


def _make_market(path: Path, count: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE licences (licence_no TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
            "holder TEXT NOT NULL, region_code TEXT NOT NULL, capital NUMERIC(14, 2), "
            "issued_at DATETIME NOT NULL)"
        )
        start = datetime.datetime(2025, 1, 1, 9, 0)
        db.executemany(
            "INSERT INTO licences VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    f"91510100MA{i:08d}",
                    i,
                    f"成都{('锦江', '青羊', '武侯')[i % 3]}商贸有限公司第{i}号",
                    _REGIONS[i % 3],
                    str(Decimal(100_000 + i * 37) / 100),
                    (start + datetime.timedelta(minutes=i)).isoformat(sep=" "),
                )
                for i in range(count)
            ],
        )


def _config(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


async def _register(admin: Caller, officer: Caller, schema: dict[str, Any]) -> None:
    await admin.catalog.CreateResource(
        pb.CreateResourceRequest(
            resource=pb.Resource(
                code=RESOURCE,
                name="营业执照 Business licences",
                owner_department="SAMR",
                summary="Licences issued by market regulation, from its own database.",
                sharing_type=pb.SHARING_TYPE_CONDITIONAL,
                classification=pb.CLASSIFICATION_GENERAL,
                update_cycle="real-time",
                key_fields=["licence_no"],
                region_field="region_code",
            ),
            schema=json.dumps(schema, ensure_ascii=False),
        ),
    )
    await admin.catalog.CreateGrant(
        pb.CreateGrantRequest(grant=pb.Grant(resource=RESOURCE, grantee_system="CIVIL-AID")),
    )
    await officer.approvals.SetBackflowEligibility(
        ap.SetBackflowEligibilityRequest(resource=RESOURCE, eligible=True),
    )


async def run_adapters(
    workdir: Path,
    demo_pki: DemoPKI,
    admin: Caller,
    samr_officer: Caller,
    system_keys: dict[str, tuple[Ed25519Signer, ClientCertificate]],
    count: int,
    step: Any,
) -> AdapterResult:
    """Runs the three adapters until everything arrived (or 120 s passed)."""
    result = AdapterResult(licences=count)
    base = workdir / "adapters"
    base.mkdir(parents=True, exist_ok=True)
    market = base / "market.db"
    _make_market(market, count)
    result.expected_jinjiang = sum(1 for i in range(count) if _REGIONS[i % 3] == JINJIANG)
    source = SqlSource({"url": f"sqlite:///{market}", "table": "licences", "cursor": "seq"})
    (stream,) = [s for s in await source.discover() if s.name == "licences"]
    await source.close()
    await _register(admin, samr_officer, stream.schema)
    step(f"market regulation's own database market.db holds {count:,} licences")
    step(
        f"registered {RESOURCE} from the sql adapter's discovery; civil affairs granted; "
        "backflow-eligible"
    )

    signer, _ = system_keys["SAMR-LICENCE"]
    signer.save(base / "samr-signing-key.pem")

    def gateway(system: str) -> str:
        """The [gateway] table: mutual TLS with the system's certificate."""
        identity = system_keys[system][1]
        return (
            f'[gateway]\naddress = "{demo_pki.target}"\nca_cert = "{demo_pki.ca_cert}"\n'
            f'client_cert = "{identity.cert}"\nclient_key = "{identity.key}"\n'
        )

    configs = [
        _config(
            base / "samr.toml",
            gateway("SAMR-LICENCE") + 'signing_key = "samr-signing-key.pem"\n\n[[publish]]\n'
            f'resource = "{RESOURCE}"\nsource = "sql"\npoll_seconds = 0.5\n'
            '[publish.options]\nurl = "sqlite:///market.db"\ntable = "licences"\n'
            'cursor = "seq"\n',
        ),
        _config(
            base / "civil.toml",
            gateway("CIVIL-AID") + "\n[[subscribe]]\n"
            f'resource = "{RESOURCE}"\nsink = "sql"\n[subscribe.options]\n'
            'url = "sqlite:///civil.db"\ntable = "licences"\ncreate_table = true\n',
        ),
        _config(
            base / "jinjiang.toml",
            gateway("JINJIANG-GRID") + "\n"
            f'[[subscribe]]\nresource = "{RESOURCE}"\nsink = "files"\n'
            '[subscribe.options]\nfolder = "jinjiang-inbox"\nformat = "jsonl"\n',
        ),
    ]
    (base / "jinjiang-inbox").mkdir(exist_ok=True)
    runners = [Runner(load(path), report_seconds=0) for path in configs]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    civil, inbox = base / "civil.db", base / "jinjiang-inbox"
    try:
        for _ in range(600):
            await asyncio.sleep(0.2)
            result.civil_rows = _count(civil)
            _read_inbox(inbox, result)
            if result.ok:
                break
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    with sqlite3.connect(civil) as db:
        result.civil_sample = db.execute(
            "SELECT licence_no, holder, region_code, capital FROM licences ORDER BY seq LIMIT 2"
        ).fetchall()
    step(
        f"civil.db (civil affairs' own database) now holds {result.civil_rows:,} licences, "
        f"e.g. {result.civil_sample[0] if result.civil_sample else '-'}"
    )
    step(
        f"jinjiang-inbox/: {result.jinjiang_files} JSON Lines files, "
        f"{result.jinjiang_rows:,} licences, {result.jinjiang_foreign} outside {JINJIANG}"
    )
    return result


def _count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM licences").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _read_inbox(folder: Path, result: AdapterResult) -> None:
    files = sorted(p for p in folder.glob("*.jsonl")) if folder.exists() else []
    keys: dict[str, str] = {}
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                keys[row["licence_no"]] = row["region_code"]
    result.jinjiang_files = len(files)
    result.jinjiang_rows = len(keys)
    result.jinjiang_foreign = sum(1 for region in keys.values() if region != JINJIANG)
