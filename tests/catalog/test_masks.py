"""Tests for masks of sensitive personal fields (catalog.masks)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog import masks
from catalog.masks import (
    ADDRESS,
    DEFAULT_POLICY,
    ID_NUMBER,
    NAME,
    PERSONAL,
    PHONE,
    MaskPolicy,
    keep_first_last,
    mask_record,
)
from catalog.models import Sensitivity

# --- default masks -----------------------------------------------------------------------


def test_an_id_number_keeps_its_first_six_and_last_four_characters() -> None:
    assert ID_NUMBER("110101199001011234") == "110101********1234"


def test_an_id_number_ending_in_x_keeps_the_x() -> None:
    assert ID_NUMBER("11010119900101123X") == "110101********123X"


def test_an_old_fifteen_digit_id_number_follows_the_same_rule() -> None:
    assert ID_NUMBER("110101900101123") == "110101*****1123"


def test_an_id_number_too_short_to_keep_both_ends_is_masked_entirely() -> None:
    assert ID_NUMBER("1101011234") == "**********"
    assert ID_NUMBER("123") == "***"
    assert ID_NUMBER("") == ""


def test_a_phone_keeps_its_first_three_and_last_four_digits() -> None:
    assert PHONE("13812345678") == "138****5678"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+8613812345678", "+86138****5678"),
        ("+86 138 1234 5678", "+86 138 **** 5678"),
        ("+86-138-1234-5678", "+86-138-****-5678"),
        ("8613812345678", "86138****5678"),
        ("86 138 1234 5678", "86 138 **** 5678"),
        ("138-1234-5678", "138-****-5678"),
        ("(028) 8765-4321", "(028) ****-4321"),
    ],
)
def test_a_phone_keeps_its_country_code_and_separators(value: str, expected: str) -> None:
    assert PHONE(value) == expected


def test_a_bare_86_is_a_country_code_only_before_an_eleven_digit_number() -> None:
    assert PHONE("86123456789") == "861****6789"


def test_letters_in_a_phone_are_masked_like_digits() -> None:
    assert PHONE("138abcd5678") == "138****5678"


def test_a_phone_of_seven_digits_or_fewer_is_masked_entirely() -> None:
    assert PHONE("1234567") == "*******"
    assert PHONE("+86 12-34") == "+86 **-**"
    assert PHONE("") == ""


def test_a_name_keeps_the_surname() -> None:
    assert NAME("张三") == "张*"
    assert NAME("张三丰") == "张**"


_COMPOUND = "欧阳司马诸葛上官东方皇甫尉迟公孙慕容长孙宇文司徒夏侯轩辕令狐钟离端木"


@pytest.mark.parametrize("surname", [_COMPOUND[i : i + 2] for i in range(0, len(_COMPOUND), 2)])
def test_a_name_with_a_compound_surname_keeps_both_characters(surname: str) -> None:
    assert NAME(surname + "娜娜") == surname + "**"
    assert NAME(surname + "娜") == surname + "*"


def test_the_domain_compound_surname_example() -> None:
    assert NAME("欧阳娜娜") == "欧阳**"


def test_a_two_character_name_that_is_a_compound_surname_keeps_only_one() -> None:
    assert NAME("欧阳") == "欧*"


def test_a_one_character_name_is_masked_entirely() -> None:
    assert NAME("张") == "*"
    assert NAME("") == ""


def test_a_latin_name_keeps_the_first_letter_of_the_first_word() -> None:
    assert NAME("Zhang San") == "Z********"
    assert NAME("  Zhang San") == "  Z********"


def test_an_address_keeps_everything_up_to_its_district() -> None:
    assert ADDRESS("四川省成都市锦江区人民南路1号") == "四川省成都市锦江区****"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("北京市朝阳区建国路88号", "北京市朝阳区****"),
        ("上海市浦东新区世纪大道100号", "上海市浦东新区****"),
        ("云南省大理白族自治州宾川县金牛镇", "云南省大理白族自治州宾川县****"),
        ("内蒙古自治区锡林郭勒盟阿巴嘎旗别力古台镇", "内蒙古自治区****"),
        ("四川省都江堰市幸福镇翔凤路小区3栋", "四川省都江堰市****"),
        ("广东省东莞市南城街道鸿福路", "广东省东莞市****"),
    ],
)
def test_an_address_keeps_its_first_district_level_marker(value: str, expected: str) -> None:
    assert ADDRESS(value) == expected


def test_a_city_at_position_two_is_not_a_district_marker() -> None:
    assert ADDRESS("北京市东城") == "北京市东城****"
    assert ADDRESS("重庆市人民路1号") == "重庆市人民****"


def test_a_district_word_after_the_street_is_not_a_district_marker() -> None:
    assert ADDRESS("四川省成都市人民南路阳光小区3栋") == "四川省成都市****"


def test_an_address_without_a_marker_keeps_its_first_six_characters() -> None:
    assert ADDRESS("成都锦江春熙商圈一带") == "成都锦江春熙****"


def test_an_address_without_a_marker_keeps_nothing_past_the_street() -> None:
    assert ADDRESS("人民南路1号") == "人民南****"


def test_an_address_mask_does_not_leak_the_length() -> None:
    assert ADDRESS("四川省成都市锦江区人民南路1号") == ADDRESS(
        "四川省成都市锦江区红星路二段70号附5号"
    )


def test_personal_data_is_masked_entirely() -> None:
    assert PERSONAL("O型血, 高血压") == "****"
    assert PERSONAL("") == "****"


# --- keep_first_last ---------------------------------------------------------------------


def test_keep_first_last_uses_its_fill_character() -> None:
    assert keep_first_last(1, 1, "#")("abcd") == "a##d"


def test_keep_first_last_can_keep_nothing() -> None:
    assert keep_first_last(0, 0)("abc") == "***"


def test_keep_first_last_masks_a_value_exactly_as_long_as_the_kept_ends() -> None:
    assert keep_first_last(3, 4)("1234567") == "*******"


@pytest.mark.parametrize(
    ("first", "last", "fill"), [(-1, 4, "*"), (3, -1, "*"), (3, 4, ""), (3, 4, "**")]
)
def test_keep_first_last_refuses_bad_arguments(first: int, last: int, fill: str) -> None:
    with pytest.raises(ValueError, match=r"keep_first_last|fill"):
        keep_first_last(first, last, fill)


@given(st.text(), st.integers(0, 8), st.integers(0, 8))
def test_keep_first_last_keeps_the_length(value: str, first: int, last: int) -> None:
    assert len(keep_first_last(first, last)(value)) == len(value)


@given(st.text(min_size=1), st.integers(0, 8), st.integers(0, 8))
def test_keep_first_last_never_returns_a_maskable_clear_value(
    value: str, first: int, last: int
) -> None:
    span = value[first : len(value) - last] if len(value) > first + last else ""
    masked = keep_first_last(first, last)(value)
    if span and set(span) != {"*"}:
        assert masked != value
    assert set(masked[first : len(value) - last]) <= {"*"}


@given(st.text(), st.integers(0, 8), st.integers(0, 8))
def test_keep_first_last_is_deterministic(value: str, first: int, last: int) -> None:
    assert keep_first_last(first, last)(value) == keep_first_last(first, last)(value)


_ID = st.from_regex(r"\d{17}[\dX]|\d{15}", fullmatch=True)
_PHONE = st.from_regex(r"(\+86 ?|86)?1\d{2}[ -]?\d{4}[ -]?\d{4}", fullmatch=True)


@given(_ID)
def test_an_id_number_mask_is_idempotent(value: str) -> None:
    assert ID_NUMBER(ID_NUMBER(value)) == ID_NUMBER(value)
    assert ID_NUMBER(value) != value


@given(st.one_of(_PHONE, st.text(alphabet="0123456789+- ()")))
def test_a_phone_mask_is_idempotent_and_keeps_the_length(value: str) -> None:
    assert PHONE(PHONE(value)) == PHONE(value)
    assert len(PHONE(value)) == len(value)


@given(_PHONE)
def test_a_phone_mask_never_returns_the_clear_number(value: str) -> None:
    masked = PHONE(value)
    assert masked != value
    assert masked.count("*") == 4


@given(st.sampled_from(list(Sensitivity)), st.text())
def test_every_default_mask_is_deterministic(tag: Sensitivity, value: str) -> None:
    assert DEFAULT_POLICY.mask(tag, value) == DEFAULT_POLICY.mask(tag, value)


@given(
    st.sampled_from([Sensitivity.NAME, Sensitivity.ADDRESS, Sensitivity.PERSONAL]),
    st.text(alphabet=st.characters(blacklist_characters="*"), min_size=2),
)
def test_names_addresses_and_personal_data_never_come_back_clear(
    tag: Sensitivity, value: str
) -> None:
    assert DEFAULT_POLICY.mask(tag, value) != value


# --- MaskPolicy --------------------------------------------------------------------------


def test_the_default_policy_uses_the_default_masks() -> None:
    assert DEFAULT_POLICY.masks == {tag: "default" for tag in Sensitivity}
    assert DEFAULT_POLICY.mask(Sensitivity.PHONE, "13812345678") == "138****5678"
    assert DEFAULT_POLICY.mask(Sensitivity.ID_NUMBER, "110101199001011234") == "110101********1234"
    assert DEFAULT_POLICY.mask(Sensitivity.NAME, "张三") == "张*"
    assert DEFAULT_POLICY.mask(Sensitivity.PERSONAL, "x") == "****"
    assert DEFAULT_POLICY.mask(Sensitivity.NONE, "张三") == "张三"


def test_a_policy_parses_every_kind_of_spec() -> None:
    policy = MaskPolicy.from_mapping(
        {"PHONE": "keep_first_last:3:2", "NAME": "full", "ADDRESS": "none", "ID_NUMBER": "default"}
    )
    assert policy.mask(Sensitivity.PHONE, "13812345678") == "138******78"
    assert policy.mask(Sensitivity.NAME, "张三") == "****"
    assert policy.mask(Sensitivity.ADDRESS, "北京市朝阳区建国路88号") == "北京市朝阳区建国路88号"
    assert policy.mask(Sensitivity.ID_NUMBER, "110101199001011234") == "110101********1234"
    assert policy.mask(Sensitivity.PERSONAL, "x") == "****"


def test_a_policy_fills_in_missing_tags_with_their_default() -> None:
    policy = MaskPolicy.from_mapping({"NAME": "full"})
    assert policy.masks[Sensitivity.PHONE] == "default"
    assert policy == MaskPolicy({Sensitivity.NAME: "full"})


def test_a_none_tag_may_only_be_left_unmasked() -> None:
    assert MaskPolicy.from_mapping({"NONE": "none"}).mask(Sensitivity.NONE, "x") == "x"
    with pytest.raises(ValueError, match="'full' for NONE"):
        MaskPolicy.from_mapping({"NONE": "full"})


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "partial",
        "FULL",
        "full:3",
        "none:1",
        "keep_first_last",
        "keep_first_last:3",
        "keep_first_last:3:4:5",
        "keep_first_last:a:4",
        "keep_first_last:-1:4",
        "keep_first_last:3:4.0",
        " keep_first_last:3:4",
    ],
)
def test_a_bad_spec_is_refused_naming_the_tag_and_the_spec(spec: str) -> None:
    with pytest.raises(ValueError, match="PHONE") as caught:
        MaskPolicy.from_mapping({"PHONE": spec})
    assert repr(spec) in str(caught.value)


def test_an_unknown_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="'EMAIL'"):
        MaskPolicy.from_mapping({"EMAIL": "full"})
    with pytest.raises(ValueError, match="EMAIL"):
        MaskPolicy({"EMAIL": "full"})  # type: ignore[dict-item]


def test_a_policy_made_directly_checks_its_specs() -> None:
    with pytest.raises(ValueError, match="'nope' for NAME"):
        MaskPolicy({Sensitivity.NAME: "nope"})


def test_a_policy_does_not_follow_changes_to_the_dict_it_was_made_from() -> None:
    specs = {Sensitivity.NAME: "full"}
    policy = MaskPolicy(specs)
    specs[Sensitivity.NAME] = "none"
    assert policy.mask(Sensitivity.NAME, "张三") == "****"


@pytest.mark.parametrize("tag", list(Sensitivity))
def test_none_stays_none(tag: Sensitivity) -> None:
    assert DEFAULT_POLICY.mask(tag, None) is None


@pytest.mark.parametrize(
    "value", [13812345678, b"13812345678", {"phone": "13812345678"}, 1.5, True]
)
def test_a_non_string_in_a_sensitive_field_is_refused(value: object) -> None:
    with pytest.raises(TypeError, match=type(value).__name__):
        DEFAULT_POLICY.mask(Sensitivity.PHONE, value)


def test_a_non_string_is_refused_even_when_the_policy_allows_clear_text() -> None:
    with pytest.raises(TypeError, match="int"):
        MaskPolicy.from_mapping({"PHONE": "none"}).mask(Sensitivity.PHONE, 13812345678)


@pytest.mark.parametrize("value", [13812345678, b"x", {"a": 1}])
def test_a_non_string_in_an_untagged_field_passes_unchanged(value: object) -> None:
    assert DEFAULT_POLICY.mask(Sensitivity.NONE, value) is value


# --- mask_record -------------------------------------------------------------------------

TAGS = {
    "id_number": Sensitivity.ID_NUMBER,
    "name": Sensitivity.NAME,
    "phone": Sensitivity.PHONE,
    "address": Sensitivity.ADDRESS,
    "blood_type": Sensitivity.PERSONAL,
    "region": Sensitivity.NONE,
}


def _person() -> dict[str, Any]:
    return {
        "id_number": "110101199001011234",
        "name": "欧阳娜娜",
        "phone": "13812345678",
        "address": "四川省成都市锦江区人民南路1号",
        "blood_type": "O",
        "region": "510104",
        "count": 3,
        "extra": {"nested": "13812345678"},
    }


def test_mask_record_masks_every_sensitive_field() -> None:
    assert mask_record(_person(), TAGS, clear=()) == {
        "id_number": "110101********1234",
        "name": "欧阳**",
        "phone": "138****5678",
        "address": "四川省成都市锦江区****",
        "blood_type": "****",
        "region": "510104",
        "count": 3,
        "extra": {"nested": "13812345678"},
    }


def test_mask_record_leaves_clear_fields_in_clear_text() -> None:
    masked = mask_record(_person(), TAGS, clear={"phone", "name"})
    assert masked["phone"] == "13812345678"
    assert masked["name"] == "欧阳娜娜"
    assert masked["id_number"] == "110101********1234"


def test_mask_record_never_mutates_its_input() -> None:
    record = _person()
    before = copy.deepcopy(record)
    masked = mask_record(record, TAGS, clear=["name"])
    assert record == before
    assert masked is not record


def test_mask_record_skips_tagged_fields_missing_from_the_record() -> None:
    assert mask_record({"region": "510104"}, TAGS, clear=()) == {"region": "510104"}


def test_mask_record_keeps_none_in_an_optional_sensitive_field() -> None:
    assert mask_record({"phone": None}, TAGS, clear=()) == {"phone": None}


def test_mask_record_uses_the_given_policy() -> None:
    policy = MaskPolicy.from_mapping({"PHONE": "full"})
    assert mask_record({"phone": "13812345678"}, TAGS, (), policy) == {"phone": "****"}


def test_mask_record_refuses_a_non_string_sensitive_field() -> None:
    with pytest.raises(TypeError, match="int"):
        mask_record({"phone": 13812345678}, TAGS, clear=())


def test_mask_record_masks_every_string_inside_a_nested_sensitive_field() -> None:
    """Records, arrays, maps and named union branches, as the gateway reads them."""
    record = {
        "phones": ["13812345678", None],
        "address": {"home": "四川省成都市锦江区人民南路1号"},
        "who": ("gov.samr.Person", {"name": "欧阳娜娜"}),
    }
    tags = {"phones": Sensitivity.PHONE, "address": Sensitivity.ADDRESS, "who": Sensitivity.NAME}
    assert mask_record(record, tags, clear=()) == {
        "phones": ["138****5678", None],
        "address": {"home": "四川省成都市锦江区****"},
        "who": ("gov.samr.Person", {"name": "欧阳**"}),
    }


def test_mask_record_refuses_a_non_string_inside_a_nested_sensitive_field() -> None:
    with pytest.raises(TypeError, match="int"):
        mask_record({"phones": ["13812345678", 5]}, TAGS | {"phones": Sensitivity.PHONE}, ())


def test_the_module_exposes_the_named_masks() -> None:
    assert masks.DEFAULT_MASKS[Sensitivity.NONE]("x") == "x"
    assert masks.full("abc") == "****"
