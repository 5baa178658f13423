"""Tests for Avro schema compatibility checking (catalog.compatibility)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.compatibility import (
    CompatibilityMode,
    Incompatibility,
    can_read,
    check,
)

Schema = Any
NO_DEFAULT = object()


def field(name: str, type_: Schema, default: object = NO_DEFAULT, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "type": type_, **extra}
    if default is not NO_DEFAULT:
        result["default"] = default
    return result


def record(*fields: dict[str, Any], name: str = "Person", **extra: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": "gov.lijiao",
        "fields": list(fields),
        **extra,
    }


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Status", "symbols": list(symbols), **extra}


def person(*extra_fields: dict[str, Any]) -> dict[str, Any]:
    return record(field("id", "long"), field("name", "string"), *extra_fields)


def paths(problems: list[Incompatibility]) -> list[str]:
    return [problem.path for problem in problems]


BASE = person()
WITH_PHONE_DEFAULT = person(field("phone", "string", default=""))
WITH_PHONE_REQUIRED = person(field("phone", "string"))
AGE_INT = person(field("age", "int"))
AGE_LONG = person(field("age", "long"))
STATUS_AB = person(field("status", enum("ACTIVE", "BLOCKED")))
STATUS_ABC = person(field("status", enum("ACTIVE", "BLOCKED", "CLOSED")))
NICK_NULL_STRING = person(field("nick", ["null", "string"], default=None))
NICK_NULL_STRING_INT = person(field("nick", ["null", "string", "int"], default=None))

B = CompatibilityMode.BACKWARD
F = CompatibilityMode.FORWARD
FULL = CompatibilityMode.FULL


# --------------------------------------------------------------------- BACKWARD


def test_backward_accepts_adding_a_field_with_a_default() -> None:
    assert check(WITH_PHONE_DEFAULT, [BASE], B) == []


def test_backward_refuses_adding_a_field_without_a_default() -> None:
    problems = check(WITH_PHONE_REQUIRED, [BASE], B)
    assert paths(problems) == ["/fields/phone"]
    assert "'phone' has no default" in problems[0].message
    assert "version 1" in problems[0].message


def test_backward_accepts_removing_a_field_with_or_without_a_default() -> None:
    assert check(BASE, [WITH_PHONE_REQUIRED], B) == []
    assert check(BASE, [WITH_PHONE_DEFAULT], B) == []


def test_backward_accepts_widening_int_to_long() -> None:
    assert check(AGE_LONG, [AGE_INT], B) == []


def test_backward_refuses_narrowing_long_to_int() -> None:
    problems = check(AGE_INT, [AGE_LONG], B)
    assert paths(problems) == ["/fields/age/type"]
    assert "'int' cannot read writer type 'long'" in problems[0].message


def test_backward_accepts_adding_an_enum_symbol() -> None:
    assert check(STATUS_ABC, [STATUS_AB], B) == []


def test_backward_refuses_removing_an_enum_symbol() -> None:
    problems = check(STATUS_AB, [STATUS_ABC], B)
    assert paths(problems) == ["/fields/status/type/symbols"]
    assert "CLOSED" in problems[0].message


def test_backward_accepts_removing_an_enum_symbol_when_the_reader_enum_has_a_default() -> None:
    new = person(field("status", enum("ACTIVE", "BLOCKED", default="ACTIVE")))
    assert check(new, [STATUS_ABC], B) == []


def test_backward_accepts_union_widening() -> None:
    assert check(NICK_NULL_STRING_INT, [NICK_NULL_STRING], B) == []


def test_backward_refuses_union_narrowing() -> None:
    problems = check(NICK_NULL_STRING, [NICK_NULL_STRING_INT], B)
    assert paths(problems) == ["/fields/nick/type"]
    assert "'int' does not match any branch" in problems[0].message


def test_backward_accepts_renaming_a_record_with_an_alias() -> None:
    renamed = {**BASE, "name": "Citizen", "aliases": ["Person"]}
    assert check(renamed, [BASE], B) == []


def test_backward_refuses_renaming_a_record_without_an_alias() -> None:
    renamed = {**BASE, "name": "Citizen"}
    problems = check(renamed, [BASE], B)
    assert paths(problems) == ["/name"]
    assert "aliases" in problems[0].message


def test_backward_accepts_renaming_a_field_with_an_alias() -> None:
    renamed = record(field("id", "long"), field("full_name", "string", aliases=["name"]))
    assert check(renamed, [BASE], B) == []


def test_backward_refuses_a_required_field_added_to_a_nested_record() -> None:
    old = person(field("address", record(field("city", "string"), name="Address")))
    new = person(
        field("address", record(field("city", "string"), field("zip", "string"), name="Address"))
    )
    problems = check(new, [old], B)
    assert paths(problems) == ["/fields/address/type/fields/zip"]


def test_backward_accepts_widening_array_items_and_refuses_narrowing_them() -> None:
    ints = person(field("scores", {"type": "array", "items": "int"}))
    doubles = person(field("scores", {"type": "array", "items": "double"}))
    assert check(doubles, [ints], B) == []
    assert paths(check(ints, [doubles], B)) == ["/fields/scores/type/items"]


def test_backward_checks_map_values() -> None:
    strings = person(field("tags", {"type": "map", "values": "string"}))
    ints = person(field("tags", {"type": "map", "values": "int"}))
    assert paths(check(ints, [strings], B)) == ["/fields/tags/type/values"]


def test_backward_only_compares_with_the_latest_version() -> None:
    assert check(WITH_PHONE_REQUIRED, [BASE, WITH_PHONE_REQUIRED], B) == []


# ---------------------------------------------------------------------- FORWARD


def test_forward_accepts_adding_a_field_without_a_default() -> None:
    assert check(WITH_PHONE_REQUIRED, [BASE], F) == []


def test_forward_accepts_removing_a_field_with_a_default() -> None:
    assert check(BASE, [WITH_PHONE_DEFAULT], F) == []


def test_forward_refuses_removing_a_field_without_a_default() -> None:
    problems = check(BASE, [WITH_PHONE_REQUIRED], F)
    assert paths(problems) == ["/fields/phone"]
    assert "version 1 cannot read data written by the new schema" in problems[0].message


def test_forward_accepts_narrowing_long_to_int() -> None:
    assert check(AGE_INT, [AGE_LONG], F) == []


def test_forward_refuses_widening_int_to_long() -> None:
    assert paths(check(AGE_LONG, [AGE_INT], F)) == ["/fields/age/type"]


def test_forward_refuses_adding_an_enum_symbol() -> None:
    assert paths(check(STATUS_ABC, [STATUS_AB], F)) == ["/fields/status/type/symbols"]


def test_forward_accepts_removing_an_enum_symbol() -> None:
    assert check(STATUS_AB, [STATUS_ABC], F) == []


def test_forward_accepts_union_narrowing_and_refuses_union_widening() -> None:
    assert check(NICK_NULL_STRING, [NICK_NULL_STRING_INT], F) == []
    assert paths(check(NICK_NULL_STRING_INT, [NICK_NULL_STRING], F)) == ["/fields/nick/type"]


def test_forward_refuses_a_renamed_record_because_the_old_reader_has_no_alias() -> None:
    renamed = {**BASE, "name": "Citizen", "aliases": ["Person"]}
    assert paths(check(renamed, [BASE], F)) == ["/name"]


# ------------------------------------------------------------------------- FULL


def test_full_accepts_adding_a_field_with_a_default() -> None:
    assert check(WITH_PHONE_DEFAULT, [BASE], FULL) == []


def test_full_refuses_adding_a_field_without_a_default() -> None:
    problems = check(WITH_PHONE_REQUIRED, [BASE], FULL)
    assert len(problems) == 1
    assert problems[0].message.startswith("new schema cannot read data written by version 1")


def test_full_refuses_widening_int_to_long_and_reports_the_forward_direction() -> None:
    problems = check(AGE_LONG, [AGE_INT], FULL)
    assert len(problems) == 1
    assert problems[0].message.startswith("version 1 cannot read data written by the new schema")


def test_full_refuses_removing_a_field_without_a_default() -> None:
    assert len(check(BASE, [WITH_PHONE_REQUIRED], FULL)) == 1


def test_full_refuses_changing_a_field_type_in_both_directions() -> None:
    old = person(field("age", "int"))
    new = person(field("age", "boolean"))
    assert len(check(new, [old], FULL)) == 2


# ------------------------------------------------------------------- TRANSITIVE


def test_backward_transitive_catches_a_conflict_with_an_older_version() -> None:
    history = [BASE, WITH_PHONE_REQUIRED]
    new = WITH_PHONE_REQUIRED
    assert check(new, history, CompatibilityMode.BACKWARD) == []
    problems = check(new, history, CompatibilityMode.BACKWARD_TRANSITIVE)
    assert paths(problems) == ["/fields/phone"]
    assert "version 1" in problems[0].message


def test_forward_transitive_catches_a_conflict_with_an_older_version() -> None:
    history = [AGE_INT, AGE_LONG]
    assert check(AGE_LONG, history, CompatibilityMode.FORWARD) == []
    problems = check(AGE_LONG, history, CompatibilityMode.FORWARD_TRANSITIVE)
    assert paths(problems) == ["/fields/age/type"]
    assert "version 1 cannot read" in problems[0].message


def test_full_transitive_catches_a_conflict_with_an_older_version() -> None:
    history = [BASE, WITH_PHONE_REQUIRED]
    assert check(WITH_PHONE_REQUIRED, history, FULL) == []
    problems = check(WITH_PHONE_REQUIRED, history, CompatibilityMode.FULL_TRANSITIVE)
    assert len(problems) == 1
    assert "version 1" in problems[0].message


def test_transitive_modes_accept_a_change_compatible_with_every_version() -> None:
    history = [BASE, WITH_PHONE_DEFAULT]
    new = person(field("phone", "string", default=""), field("email", "string", default=""))
    for mode in (
        CompatibilityMode.BACKWARD_TRANSITIVE,
        CompatibilityMode.FORWARD_TRANSITIVE,
        CompatibilityMode.FULL_TRANSITIVE,
    ):
        assert check(new, history, mode) == []


def test_transitive_problems_name_each_conflicting_version() -> None:
    history = [AGE_LONG, person(field("age", "double")), AGE_INT]
    problems = check(person(field("age", "string")), history, CompatibilityMode.BACKWARD_TRANSITIVE)
    assert [p.message.split(":")[0][-9:] for p in problems] == [
        "version 1",
        "version 2",
        "version 3",
    ]


# ----------------------------------------------------------------- NONE / misc


@pytest.mark.parametrize("mode", list(CompatibilityMode))
def test_every_mode_accepts_anything_when_there_is_no_previous_version(
    mode: CompatibilityMode,
) -> None:
    assert check(AGE_INT, [], mode) == []


def test_none_accepts_anything() -> None:
    history: list[object] = [BASE, "string", {"type": "array", "items": "int"}]
    assert check(WITH_PHONE_REQUIRED, history, CompatibilityMode.NONE) == []
    assert check("null", history, CompatibilityMode.NONE) == []


def test_check_accepts_mode_names_as_plain_strings() -> None:
    assert check(WITH_PHONE_REQUIRED, [BASE], "FORWARD") == []  # type: ignore[arg-type]


def test_invalid_schemas_are_rejected() -> None:
    with pytest.raises(ValueError, match="invalid Avro schema"):
        can_read({"type": "enum", "name": "E"}, "int")
    with pytest.raises(ValueError, match="invalid Avro schema"):
        can_read("int", {"type": "record", "name": "R", "fields": [{"name": "x", "type": "Nope"}]})
    with pytest.raises(ValueError):
        check("int", ["int"], "SIDEWAYS")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        can_read(42, "int")


# -------------------------------------------------------------- resolution rules


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    ],
)
def test_promotions_allowed_by_the_specification_are_accepted(writer: str, reader: str) -> None:
    assert can_read(reader, writer) == []


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("long", "int"),
        ("double", "float"),
        ("float", "long"),
        ("boolean", "int"),
        ("null", "string"),
    ],
)
def test_other_primitive_conversions_are_refused(writer: str, reader: str) -> None:
    assert paths(can_read(reader, writer)) == ["/"]


def test_a_non_union_writer_is_read_by_a_matching_union_branch() -> None:
    assert can_read(["null", "long"], "int") == []
    assert paths(can_read(["null", "long"], "string")) == ["/"]


def test_a_union_writer_needs_every_branch_readable_by_a_non_union_reader() -> None:
    assert can_read("long", ["int", "long"]) == []
    problems = can_read("int", ["null", "int"])
    assert len(problems) == 1
    assert "writer type 'null'" in problems[0].message


def test_a_union_branch_of_the_same_record_reports_the_nested_problem() -> None:
    reader = person(field("home", ["null", record(field("zip", "string"), name="Addr")]))
    writer = person(field("home", ["null", record(name="Addr")]))
    assert paths(can_read(reader, writer)) == ["/fields/home/type/1/fields/zip"]


def test_fixed_types_need_the_same_size_and_name() -> None:
    md5 = {"type": "fixed", "name": "Hash", "size": 16}
    assert can_read(md5, md5) == []
    assert paths(can_read({**md5, "size": 32}, md5)) == ["/size"]
    assert paths(can_read({**md5, "name": "Digest"}, md5)) == ["/name"]


def test_named_types_match_by_unqualified_name_across_namespaces() -> None:
    reader = {**BASE, "namespace": "gov.lijiao.v2"}
    assert can_read(reader, BASE) == []


def test_logical_types_are_ignored_except_decimal_precision_and_scale() -> None:
    assert can_read({"type": "int", "logicalType": "date"}, "int") == []
    assert can_read("long", {"type": "int", "logicalType": "date"}) == []
    money = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}
    assert can_read(money, money) == []
    problems = can_read({**money, "scale": 4}, money)
    assert paths(problems) == ["/"]
    assert "precision" in problems[0].message


def test_named_type_references_are_followed() -> None:
    status = enum("ACTIVE", "BLOCKED")
    reader = person(field("now", status), field("before", "Status"))
    writer = person(field("now", status), field("before", "Status"))
    assert can_read(reader, writer) == []
    writer = person(field("now", enum("ACTIVE", "BLOCKED", "CLOSED")), field("before", "Status"))
    assert paths(can_read(reader, writer)) == [
        "/fields/now/type/symbols",
        "/fields/before/type/symbols",
    ]


LINKED_LIST = {
    "type": "record",
    "name": "Node",
    "fields": [
        {"name": "value", "type": "int"},
        {"name": "next", "type": ["null", "Node"], "default": None},
    ],
}


def test_a_recursive_schema_can_read_itself() -> None:
    assert can_read(LINKED_LIST, LINKED_LIST) == []


def test_evolving_a_recursive_schema_terminates_with_the_right_answer() -> None:
    widened = {
        **LINKED_LIST,
        "fields": [{"name": "value", "type": "long"}, LINKED_LIST["fields"][1]],
    }
    assert check(widened, [LINKED_LIST], B) == []
    assert paths(check(widened, [LINKED_LIST], F)) == ["/fields/value/type"]
    labelled = {
        **LINKED_LIST,
        "fields": [*LINKED_LIST["fields"], {"name": "label", "type": "string"}],
    }
    assert paths(can_read(labelled, LINKED_LIST)) == ["/fields/label"]


# ----------------------------------------------------------------- properties

PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
DEFAULTS: dict[str, object] = {"null": None, "boolean": False, "int": 0, "long": 0, "string": ""}


def _draw_schema(draw: st.DrawFn, names: list[str], depth: int) -> Schema:
    kinds = ["primitive", "primitive", "decimal", "enum", "fixed"]
    if names:
        kinds.append("reference")
    if depth > 0:
        kinds += ["array", "map", "union", "record", "record"]
    kind = draw(st.sampled_from(kinds))
    if kind == "primitive":
        return draw(st.sampled_from(PRIMITIVES))
    if kind == "decimal":
        precision = draw(st.integers(1, 6))
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": precision,
            "scale": draw(st.integers(0, precision)),
        }
    if kind == "reference":
        return draw(st.sampled_from(names))
    if kind == "array":
        return {"type": "array", "items": _draw_schema(draw, names, depth - 1)}
    if kind == "map":
        return {"type": "map", "values": _draw_schema(draw, names, depth - 1)}
    if kind == "union":
        branches: list[Schema] = draw(
            st.lists(st.sampled_from(PRIMITIVES), min_size=1, max_size=3, unique=True)
        )
        if draw(st.booleans()):
            named = draw(st.sampled_from(["enum", "fixed", "record"]))
            branches.append(_draw_named(draw, names, depth - 1, named))
        return branches
    return _draw_named(draw, names, depth - 1, kind)


def _draw_named(draw: st.DrawFn, names: list[str], depth: int, kind: str) -> Schema:
    name = f"N{len(names)}"
    names.append(name)
    if kind == "enum":
        symbols = draw(st.lists(st.sampled_from("ABCD"), min_size=1, max_size=4, unique=True))
        schema: dict[str, Any] = {"type": "enum", "name": name, "symbols": symbols}
        if draw(st.booleans()):
            schema["default"] = symbols[0]
        return schema
    if kind == "fixed":
        return {"type": "fixed", "name": name, "size": draw(st.integers(1, 4))}
    fields = []
    for field_name in draw(st.lists(st.sampled_from("abcd"), max_size=3, unique=True)):
        type_ = _draw_schema(draw, names, max(depth, 0))
        first = type_[0] if isinstance(type_, list) else type_
        if isinstance(first, str) and first in DEFAULTS and draw(st.booleans()):
            fields.append(field(field_name, type_, default=DEFAULTS[first]))
        else:
            fields.append(field(field_name, type_))
    if draw(st.booleans()):
        fields.append(field("next", ["null", name], default=None))
    return {"type": "record", "name": name, "fields": fields}


@st.composite
def avro_schemas(draw: st.DrawFn) -> Schema:
    return _draw_schema(draw, [], depth=3)


PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(avro_schemas())
def test_any_schema_can_read_itself(schema: Schema) -> None:
    assert can_read(schema, schema) == []


@PROPERTY_SETTINGS
@given(avro_schemas(), avro_schemas())
def test_backward_of_new_against_old_equals_forward_of_old_against_new(
    new: Schema, old: Schema
) -> None:
    backward = check(new, [old], B)
    forward = check(old, [new], F)
    assert paths(backward) == paths(forward)
    assert [p.message.split(": ", 1)[1] for p in backward] == [
        p.message.split(": ", 1)[1] for p in forward
    ]


@PROPERTY_SETTINGS
@given(avro_schemas())
def test_adding_a_field_with_a_default_is_fully_compatible(schema: Schema) -> None:
    old = {"type": "record", "name": "Envelope", "fields": [field("payload", schema)]}
    new = {**old, "fields": [*old["fields"], field("sent_at", "long", default=0)]}
    assert check(new, [old], CompatibilityMode.FULL_TRANSITIVE) == []
