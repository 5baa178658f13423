"""Hostile texts against the catalog and the workflow (issue 12, findings 4, 11 and 12).

Every text a caller gives that the catalog stores, and so writes into the append-only
ledger, is bounded and free of control characters (C0, DEL, C1), bidirectional
formatting characters and line or paragraph separators; region codes are ASCII digits.
A refusal is INVALID_FIELD naming the field, and nothing changes: no row, no ledger
entry. The catalog is a SQLite file, or a PostgreSQL schema with
``LIJIAO_TEST_CATALOG=postgresql``.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import validation
from catalog.credentials import Identity
from catalog.db import close_catalog, open_catalog
from catalog.governance import Governance, GovernanceRules
from catalog.models import (
    AdministrativeLevel,
    Classification,
    RequestState,
    Role,
    Sensitivity,
    SharingType,
)
from catalog.service import Catalog, FieldSpec, ResourceSpec
from envelope.errors import InvalidArgument, LijiaoError
from tests.gateway_harness import catalog_on_postgres, postgres_schema_url
from tests.world import PERSON_SCHEMA

ADMIN = Identity("admin", Role.ADMINISTRATOR)
PSB_OFFICER = Identity("wang", Role.DATA_OFFICER, department="PSB")
CIVIL_SYSTEM = Identity("CIVIL-AID", Role.SYSTEM, department="CIVIL", system="CIVIL-AID")
PLATFORM_OFFICER = Identity("zhao", Role.PLATFORM_OFFICER, department="BIGDATA")

PERSON_FIELDS = (
    FieldSpec("id_number", "citizen ID", Sensitivity.ID_NUMBER),
    FieldSpec("name", "name", Sensitivity.NAME),
    FieldSpec("phone", "mobile", Sensitivity.PHONE),
    FieldSpec("region_code", "行政区划代码"),
)
MEGABYTE = "x" * (1 << 20)

# One of each kind the rule refuses: C0 (a terminal escape), DEL, C1 (CSI, NEL),
# bidirectional overrides, isolates and marks, line and paragraph separators.
HOSTILE = {
    "ESC": "\x1b[2J\x1b[31mfake",
    "BEL": "ding\x07",
    "newline": "two\nlines",
    "tab": "a\tb",
    "DEL": "a\x7fb",
    "C1 CSI": "a\x9b31mb",
    "C1 NEL": "a\x85b",
    "RLO": "invoice\u202egpj.exe",
    "LRE": "a\u202ab",
    "PDF": "a\u202cb",
    "LRI": "a\u2066b",
    "PDI": "a\u2069b",
    "LRM": "a\u200eb",
    "RLM": "a\u200fb",
    "ALM": "a\u061cb",
    "line separator": "a\u2028b",
    "paragraph separator": "a\u2029b",
}
FORBIDDEN = (
    [chr(c) for c in range(0x20)]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + ["\u061c", "\u200e", "\u200f", "\u2028", "\u2029"]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
)
NON_ASCII_DIGITS = {
    "fullwidth": "５１０１００",
    "Arabic-Indic": "٥١٠١٠٠",
    "extended Arabic-Indic": "۵۱۰۱۰۰",
    "Devanagari": "५१०१००",
    "Bengali": "৫১০১০০",
    "mathematical bold": "𝟓𝟏𝟎𝟏𝟎𝟎",
    "one fullwidth digit": "51010４",
    "a 9-digit code with a Thai digit": "510104๐01",
}


# --- a small city -------------------------------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    url = postgres_schema_url() if catalog_on_postgres() else f"sqlite:///{tmp_path / 'c.db'}"
    sessions = open_catalog(url)
    catalog = Catalog(sessions)
    for code, level, region in (
        ("PSB", AdministrativeLevel.CITY, "510100"),
        ("CIVIL", AdministrativeLevel.CITY, "510100"),
        ("BIGDATA", AdministrativeLevel.CITY, "510100"),
        ("JINJIANG", AdministrativeLevel.DISTRICT, "510104"),
    ):
        catalog.create_department(
            ADMIN, code=code, name=f"{code} 局", level=level, region_code=region
        )
    for code, department, key in (("PSB-HUKOU", "PSB", b"\1"), ("CIVIL-AID", "CIVIL", b"\2")):
        catalog.create_system(
            ADMIN, code=code, name=f"{code} system", department=department, public_key=key * 32
        )
    catalog.create_resource(
        ADMIN,
        ResourceSpec(
            code="RESIDENTS",
            name="常住人口 residents",
            owner_department="PSB",
            sharing_type=SharingType.CONDITIONAL,
            classification=Classification.GENERAL,
            key_fields=["id_number"],
            region_field="region_code",
            fields=PERSON_FIELDS,
        ),
        json.dumps(PERSON_SCHEMA),
    )
    try:
        yield catalog
    finally:
        close_catalog(sessions)


@pytest.fixture
def governance(catalog: Catalog) -> Governance:
    return Governance(catalog, GovernanceRules())


def ask(governance: Governance, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "resource_code": "RESIDENTS",
        "system_code": "CIVIL-AID",
        "fields": ("id_number", "name"),
        "purpose": "最低生活保障 eligibility checks",
        "legal_basis": "《社会救助暂行办法》第十一条",
        "duration_days": 90,
    }
    values.update(overrides)
    return governance.submit(CIVIL_SYSTEM, **values)


def pending(governance: Governance) -> Any:
    request = ask(governance)
    return governance.review(PLATFORM_OFFICER, request.public_id, True, "")


def granted(governance: Governance) -> Any:
    return governance.approve(PSB_OFFICER, pending(governance).public_id)[1]


def ledger_size(catalog: Catalog) -> int:
    with catalog.sessions() as session:
        return int(session.execute(sa.text("SELECT count(*) FROM ledger_entries")).scalar_one())


def refused_field(catalog: Catalog, call: Callable[[], Any]) -> InvalidArgument:
    """Runs ``call``, which must be refused as INVALID_FIELD, and checks that it
    changed nothing: every catalog change writes a ledger entry in its transaction."""
    before = ledger_size(catalog)
    with pytest.raises(LijiaoError) as raised:
        call()
    error = raised.value
    assert isinstance(error, InvalidArgument), error
    assert error.reason == "INVALID_FIELD", error.message
    assert len(error.message) < 300, "a refusal names the field and the limit, not the input"
    assert ledger_size(catalog) == before
    return error


# --- finding 4: every workflow text is bounded --------------------------------------------


@pytest.mark.parametrize("text", [MEGABYTE, *HOSTILE.values()], ids=["1 MB", *HOSTILE])
def test_a_review_reason_is_bounded_and_free_of_controls(
    catalog: Catalog, governance: Governance, text: str
) -> None:
    request = ask(governance)
    for passed in (True, False):
        error = refused_field(
            catalog, partial(governance.review, PLATFORM_OFFICER, request.public_id, passed, text)
        )
        assert error.metadata == {"field": "reason"}
    assert governance.get(request.public_id).state is RequestState.UNDER_REVIEW


@pytest.mark.parametrize("text", [MEGABYTE, *HOSTILE.values()], ids=["1 MB", *HOSTILE])
def test_an_approval_reason_is_bounded_and_free_of_controls(
    catalog: Catalog, governance: Governance, text: str
) -> None:
    request = pending(governance)
    error = refused_field(
        catalog, lambda: governance.approve(PSB_OFFICER, request.public_id, reason=text)
    )
    assert error.metadata == {"field": "reason"}
    assert governance.get(request.public_id).state is RequestState.PENDING_PROVIDER
    assert catalog.active_grant("CIVIL-AID", "RESIDENTS") is None


def test_a_reason_at_its_limit_is_kept_and_one_over_it_refused(
    catalog: Catalog, governance: Governance
) -> None:
    request = ask(governance)
    longest = "审" * validation.REASON_LIMIT
    error = refused_field(
        catalog, lambda: governance.review(PLATFORM_OFFICER, request.public_id, True, longest + "x")
    )
    assert str(validation.REASON_LIMIT) in error.message
    reviewed = governance.review(PLATFORM_OFFICER, request.public_id, True, longest)
    assert reviewed.transitions[-1].reason == longest
    _, grant = governance.approve(PSB_OFFICER, request.public_id, reason=f"  {longest}  ")
    assert governance.get(request.public_id).decision_reason == longest
    assert grant.request_id == request.public_id


@pytest.mark.parametrize(
    "record_key",
    [
        {"id_number": MEGABYTE},
        {"id_number": "5" * (validation.KEY_VALUE_LIMIT + 1)},
        {"id_number": ""},
        *({"id_number": f"510104{text}"} for text in HOSTILE.values()),
    ],
    ids=["1 MB", "one over the limit", "empty", *HOSTILE],
)
def test_a_flagged_record_key_is_bounded_and_free_of_controls(
    catalog: Catalog, governance: Governance, record_key: dict[str, str]
) -> None:
    granted(governance)
    error = refused_field(
        catalog,
        lambda: governance.flag(
            CIVIL_SYSTEM,
            resource_code="RESIDENTS",
            batch_id="b-1",
            record_key=record_key,
            comment="wrong",
        ),
    )
    assert error.metadata == {"field": "record_key"}
    assert not governance.corrections().items


def test_a_flagged_record_names_a_bounded_number_of_keys(
    catalog: Catalog, governance: Governance
) -> None:
    granted(governance)
    many = {f"k{i}": "1" for i in range(10_000)}
    error = refused_field(
        catalog,
        lambda: governance.flag(
            CIVIL_SYSTEM, resource_code="RESIDENTS", batch_id="b", record_key=many, comment="x"
        ),
    )
    assert error.metadata == {"field": "record_key"}
    kept = governance.flag(
        CIVIL_SYSTEM,
        resource_code="RESIDENTS",
        batch_id="b-1",
        record_key={"id_number": " 5" * (validation.KEY_VALUE_LIMIT // 2)},
        comment="a key value is kept exactly, spaces and all",
    )
    assert kept.record_key == {"id_number": " 5" * (validation.KEY_VALUE_LIMIT // 2)}


def _workflow_calls(governance: Governance, text: str) -> list[tuple[str, Callable[[], Any]]]:
    """Every workflow call that stores a caller's text, with ``text`` in that field."""
    under_review = ask(governance)
    at_provider = pending(governance)
    grant = granted(governance)
    governance.enrol(PLATFORM_OFFICER, "JINJIANG", "grid duty")
    correction = governance.flag(
        CIVIL_SYSTEM,
        resource_code="RESIDENTS",
        batch_id="b-1",
        record_key={"id_number": "1"},
        comment="wrong",
    )
    flag: dict[str, Any] = {
        "resource_code": "RESIDENTS",
        "batch_id": "b-2",
        "record_key": {"id_number": "2"},
        "comment": "wrong",
    }
    return [
        ("purpose", lambda: ask(governance, purpose=text)),
        ("legal_basis", lambda: ask(governance, legal_basis=text)),
        ("reason", lambda: governance.reject(PLATFORM_OFFICER, under_review.public_id, text)),
        ("reason", lambda: governance.reject(PSB_OFFICER, at_provider.public_id, text)),
        ("reason", lambda: governance.revoke_grant(PSB_OFFICER, grant.public_id, text)),
        ("reason", lambda: governance.enrol(PLATFORM_OFFICER, "JINJIANG", text)),
        ("reason", lambda: governance.withdraw(PLATFORM_OFFICER, "JINJIANG", text)),
        ("comment", lambda: governance.flag(CIVIL_SYSTEM, **{**flag, "comment": text})),
        ("batch_id", lambda: governance.flag(CIVIL_SYSTEM, **{**flag, "batch_id": text})),
        ("answer", lambda: governance.answer(PSB_OFFICER, correction.public_id, text)),
    ]


@pytest.mark.parametrize("text", [MEGABYTE, *HOSTILE.values()], ids=["1 MB", *HOSTILE])
def test_every_workflow_text_is_bounded_and_free_of_controls(
    catalog: Catalog, governance: Governance, text: str
) -> None:
    for field, call in _workflow_calls(governance, text):
        error = refused_field(catalog, call)
        assert error.metadata == {"field": field}, field


def test_an_approval_stores_each_clear_field_once(governance: Governance) -> None:
    request = pending(governance)
    _, grant = governance.approve(PSB_OFFICER, request.public_id, clear_fields=["name"] * 1000)
    assert grant.clear_fields == ["name"]


# --- finding 4: every catalog text is bounded ---------------------------------------------


def _resource(**overrides: Any) -> ResourceSpec:
    values: dict[str, Any] = {
        "code": "LICENCES",
        "name": "营业执照 licences",
        "owner_department": "PSB",
        "sharing_type": SharingType.CONDITIONAL,
        "classification": Classification.GENERAL,
        "key_fields": ["id_number"],
        "region_field": "region_code",
        "fields": PERSON_FIELDS,
    }
    values.update(overrides)
    return ResourceSpec(**values)


def _catalog_calls(catalog: Catalog, text: str) -> list[tuple[str, Callable[[], Any]]]:
    """Every catalog call that stores a caller's text, with ``text`` in that field."""
    schema = json.dumps(PERSON_SCHEMA)
    described = (FieldSpec("id_number", text, Sensitivity.ID_NUMBER),)
    return [
        (
            "name",
            lambda: catalog.create_department(
                ADMIN, code="X", name=text, level=AdministrativeLevel.CITY, region_code="510100"
            ),
        ),
        (
            "name",
            lambda: catalog.create_system(
                ADMIN, code="X", name=text, department="PSB", public_key=None
            ),
        ),
        (
            "reason",
            lambda: catalog.revoke_signing_key(
                ADMIN, "PSB-HUKOU", catalog.get_system("PSB-HUKOU").signing_keys[0].key_id, text
            ),
        ),
        ("name", lambda: catalog.create_resource(ADMIN, _resource(name=text), schema)),
        ("summary", lambda: catalog.create_resource(ADMIN, _resource(summary=text), schema)),
        ("format", lambda: catalog.create_resource(ADMIN, _resource(format=text), schema)),
        (
            "sharing_conditions",
            lambda: catalog.create_resource(ADMIN, _resource(sharing_conditions=text), schema),
        ),
        (
            "update_cycle",
            lambda: catalog.create_resource(ADMIN, _resource(update_cycle=text), schema),
        ),
        (
            "fields.description",
            lambda: catalog.create_resource(ADMIN, _resource(fields=described), schema),
        ),
    ]


@pytest.mark.parametrize(
    "text", ["x" * 5000, MEGABYTE, *HOSTILE.values()], ids=["5000", "1 MB", *HOSTILE]
)
def test_every_catalog_text_is_bounded_and_free_of_controls(catalog: Catalog, text: str) -> None:
    for field, call in _catalog_calls(catalog, text):
        error = refused_field(catalog, call)
        assert error.metadata == {"field": field}, field


def test_a_resource_describes_each_field_once_and_has_few_key_fields(catalog: Catalog) -> None:
    schema = json.dumps(PERSON_SCHEMA)
    twice = (*PERSON_FIELDS, FieldSpec("name", "again", Sensitivity.NONE))
    error = refused_field(
        catalog, lambda: catalog.create_resource(ADMIN, _resource(fields=twice), schema)
    )
    assert error.metadata == {"field": "name"}
    wide = {
        "type": "record",
        "name": "Wide",
        "fields": [{"name": f"k{i}", "type": "string"} for i in range(40)],
    }
    error = refused_field(
        catalog,
        lambda: catalog.create_resource(
            ADMIN,
            _resource(key_fields=[f"k{i}" for i in range(40)], region_field="", fields=()),
            json.dumps(wide),
        ),
    )
    assert error.metadata == {"field": "key_fields"}
    resource, _ = catalog.create_resource(
        ADMIN, _resource(key_fields=["id_number"] * 10_000), schema
    )
    assert resource.key_fields == ["id_number"]


@pytest.mark.parametrize("name", ["evil\x1b[2J", "a\u202eb", "x" * 300, "名字"])
def test_field_names_the_catalog_stores_are_avro_names(catalog: Catalog, name: str) -> None:
    schema: dict[str, Any] = {
        "type": "record",
        "name": "Odd",
        "fields": [{"name": "id", "type": "string"}, {"name": name, "type": "string"}],
    }
    before = ledger_size(catalog)
    with pytest.raises(LijiaoError) as raised:
        catalog.create_resource(
            ADMIN, _resource(key_fields=["id"], region_field="", fields=()), json.dumps(schema)
        )
    assert (raised.value.reason, raised.value.metadata) == ("INVALID_SCHEMA", {"field": "schema"})
    next_version = {**PERSON_SCHEMA, "fields": [*PERSON_SCHEMA["fields"], schema["fields"][1]]}
    next_version["fields"][-1] = {**schema["fields"][1], "default": ""}
    with pytest.raises(LijiaoError) as raised:
        catalog.add_schema(ADMIN, "RESIDENTS", json.dumps(next_version))
    assert (raised.value.reason, raised.value.metadata) == (
        "INVALID_SCHEMA",
        {"field": "definition"},
    )
    assert ledger_size(catalog) == before


# --- finding 11: one rule for every text --------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE.values(), ids=list(HOSTILE))
def test_names_purposes_and_legal_bases_refuse_c1_bidi_and_separators(
    catalog: Catalog, governance: Governance, text: str
) -> None:
    error = refused_field(
        catalog,
        lambda: catalog.create_department(
            ADMIN, code="X", name=text, level=AdministrativeLevel.CITY, region_code="510100"
        ),
    )
    assert error.metadata == {"field": "name"}
    for field in ("purpose", "legal_basis"):
        error = refused_field(catalog, partial(ask, governance, **{field: text}))
        assert error.metadata == {"field": field}


def test_a_refusal_says_which_character_and_where() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validation.text("purpose", "ok\u202eko")
    assert "U+202E" in raised.value.message and "purpose" in raised.value.message


@pytest.mark.parametrize(
    "text",
    [
        "《社会救助暂行办法》第十一条",
        "不予共享 NOT_SHARED: 《中华人民共和国人民警察法》第二十二条",
        "四川省成都市锦江区人民南路1号 (¥1,000; 50% — “引号”)",
        "ئۇيغۇرچە",  # a right-to-left script needs no override characters
        "עברית ו-English",
        "emoji 👩‍💻 with a zero-width joiner",
    ],
)
def test_ordinary_texts_of_any_script_pass(text: str) -> None:
    assert validation.text("name", text) == text


@settings(max_examples=300, deadline=None)
@given(
    head=st.text(max_size=20),
    bad=st.sampled_from(FORBIDDEN),
    tail=st.text(max_size=20),
)
def test_any_text_holding_a_forbidden_character_is_refused(head: str, bad: str, tail: str) -> None:
    value = f"a{head}{bad}{tail}b"
    with pytest.raises(InvalidArgument) as raised:
        validation.text("reason", value, limit=100)
    assert (raised.value.reason, raised.value.metadata) == ("INVALID_FIELD", {"field": "reason"})


_ALLOWED = st.characters(
    exclude_categories=("Cc", "Cs", "Zl", "Zp"),
    exclude_characters="".join(FORBIDDEN),
)


@settings(max_examples=300, deadline=None)
@given(value=st.text(_ALLOWED, min_size=1, max_size=100))
def test_any_text_of_allowed_characters_within_its_limit_passes(value: str) -> None:
    if not value.strip():
        return
    assert validation.text("reason", value, limit=100) == value.strip()


def test_the_forbidden_characters_are_exactly_controls_bidi_controls_and_separators() -> None:
    for code in range(0x110000):
        char = chr(code)
        forbidden = unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or code in (
            0x061C,
            0x200E,
            0x200F,
            *range(0x202A, 0x202F),
            *range(0x2066, 0x206A),
        )
        assert validation.forbidden_character(f"a{char}b") == (char if forbidden else None), hex(
            code
        )


# --- finding 12: region codes are ASCII digits ---------------------------------------------


@pytest.mark.parametrize("region", NON_ASCII_DIGITS.values(), ids=list(NON_ASCII_DIGITS))
def test_region_codes_are_ascii_digits_in_departments_grants_and_requests(
    catalog: Catalog, governance: Governance, region: str
) -> None:
    error = refused_field(
        catalog,
        lambda: catalog.create_department(
            ADMIN, code="X", name="x", level=AdministrativeLevel.DISTRICT, region_code=region
        ),
    )
    assert error.metadata == {"field": "region_code"}
    error = refused_field(
        catalog,
        lambda: catalog.create_grant(
            ADMIN, resource_code="RESIDENTS", system_code="CIVIL-AID", region=region
        ),
    )
    assert error.metadata == {"field": "row_filter.region_code"}
    error = refused_field(catalog, lambda: ask(governance, region=region))
    assert error.metadata == {"field": "row_filter.region_code"}


@settings(max_examples=300, deadline=None)
@given(
    digits=st.lists(st.characters(categories=["Nd"]), min_size=6, max_size=12),
)
def test_any_region_code_with_a_non_ascii_digit_is_refused(digits: list[str]) -> None:
    value = "".join(digits)
    if value.isascii():
        return
    with pytest.raises(InvalidArgument) as raised:
        validation.region_code("region_code", value)
    assert raised.value.metadata == {"field": "region_code"}


@settings(max_examples=100, deadline=None)
@given(value=st.from_regex(r"[0-9]{6}([0-9]{3}){0,2}", fullmatch=True))
def test_any_ascii_region_code_of_6_9_or_12_digits_passes(value: str) -> None:
    assert validation.region_code("region_code", value) == value


@pytest.mark.parametrize("candidate", ["5101０４", "510١04", "5101\u0664", "510104\n"])
def test_a_row_with_a_lookalike_region_lies_in_no_region(candidate: str) -> None:
    assert not validation.region_contains("510100", candidate)
    assert not validation.region_contains("510000", candidate)


@pytest.mark.parametrize("name", ["", "wang\x1b[31m", "a\u202eb", "x" * 129])
def test_a_principal_name_is_bounded_and_free_of_controls(catalog: Catalog, name: str) -> None:
    """Principal names become the ledger's principal and requester on every entry."""
    from catalog.credentials import issue_token
    from catalog.models import Principal, Role

    with catalog.sessions() as session:
        with pytest.raises(InvalidArgument) as refused:
            issue_token(session, name=name, role=Role.AUDITOR)
        assert refused.value.reason == "INVALID_FIELD"
        assert session.scalar(sa.select(sa.func.count()).select_from(Principal)) == 0


def test_a_region_value_padded_with_spaces_lies_in_its_region() -> None:
    """A fixed-width CHAR(12) column pads with spaces: those rows still flow back."""
    assert validation.region_contains("510104", "510104      ")
    assert validation.region_contains("510100", " 510104001")
    assert not validation.region_contains("510104", "510105      ")
