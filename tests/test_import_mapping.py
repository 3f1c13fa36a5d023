"""Header normalisation, the automatic mapper and explicit overrides."""

from __future__ import annotations

import pytest

from televox_pbx.campaigns.mapping import (
    MappingError,
    build_mapping,
    merge_explicit,
    normalize_header,
    parse_map_option,
    parse_target,
)


@pytest.mark.parametrize(("header", "key"), [
    ("case number", "CASE_NUMBER"),
    ("  Case--Number  ", "CASE_NUMBER"),
    ("Phone #1", "PHONE_1"),
    ("e-mail", "E_MAIL"),
    ("Prénom", "PRENOM"),
    ("__x__", "X"),
    ("???", ""),
])
def test_normalize_header(header: str, key: str) -> None:
    assert normalize_header(header) == key


def _targets(headers: list[str], samples: list[dict[str, str]] | None = None,
             explicit: dict[str, str] | None = None) -> dict[str, str]:
    m = build_mapping(headers, samples or [], explicit)
    return {c.header: c.target for c in m.columns}


def test_recognised_headers() -> None:
    headers = ["Name", "First Name", "last_name", "E-Mail", "Phone", "phone_number",
               "PHONE3", "Time Zone", "case number"]
    assert _targets(headers) == {
        "Name": "name", "First Name": "first_name", "last_name": "last_name",
        "E-Mail": "email", "Phone": "phone", "phone_number": "phone", "PHONE3": "phone",
        "Time Zone": "timezone", "case number": "var"}


def test_variables_use_normalised_names() -> None:
    m = build_mapping(["phone", "case number", "Appointment Date"])
    assert m.variables() == [("case number", "CASE_NUMBER"),
                             ("Appointment Date", "APPOINTMENT_DATE")]
    assert ("case number", "{{CASE_NUMBER}}", "default") in m.table()


def test_guesses_from_values() -> None:
    samples = [{"col a": "(202) 555-0100", "col b": "ann@example.com",
                "col c": "America/Chicago", "case id": "2025550100", "who": "Ann"},
               {"col a": "+1 202 555 0101", "col b": "bo@example.com",
                "col c": "Europe/London", "case id": "2025550101", "who": "Bo"}]
    m = build_mapping(list(samples[0]), samples)
    got = {c.header: (c.target, c.why) for c in m.columns}
    assert got["col a"] == ("phone", "values")
    assert got["col b"] == ("email", "values")
    assert got["col c"] == ("timezone", "values")
    assert got["case id"] == ("var", "default")  # an id column is never a phone
    assert got["who"] == ("var", "default")


def test_numbers_that_are_not_dialable_are_not_phones() -> None:
    samples = [{"Balance": "1234567.89", "Contact": "020 7946 0000"},
               {"Balance": "7654321.00", "Contact": "020 7946 0001"}]
    assert _targets(["Balance", "Contact"], samples) == {"Balance": "var", "Contact": "name"}
    m = build_mapping(["Col"], [{"Col": "020 7946 0000"}], default_country="GB")
    assert m.phone_headers() == ["Col"]
    assert build_mapping(["Col"], [{"Col": "020 7946 0000"}]).phone_headers() == []


def test_phone_words_in_header_need_phone_like_values() -> None:
    samples = [{"Phone Type": "mobile", "Home Phone": "2025550100"}]
    assert _targets(["Phone Type", "Home Phone"], samples) == {
        "Phone Type": "var", "Home Phone": "phone"}


def test_nested_header_names_map() -> None:
    headers = ["Contact Name", "Contact Email", "Phones Home", "Phones Work"]
    assert _targets(headers) == {"Contact Name": "name", "Contact Email": "email",
                                 "Phones Home": "phone", "Phones Work": "phone"}


def test_phone_positions_follow_slots_then_column_order() -> None:
    m = build_mapping(["Home", "Work", "Mobile"], [],
                      {"Home": "phone", "Work": "phone", "Mobile": "phone1"})
    assert m.phone_headers() == ["Mobile", "Home", "Work"]
    m = build_mapping(["phone2", "phone1", "phone3"])
    assert m.phone_headers() == ["phone1", "phone2", "phone3"]
    m = build_mapping(["Home Phone", "Work Phone"])
    assert m.phone_headers() == ["Home Phone", "Work Phone"]


def test_explicit_mapping_overrides_guess() -> None:
    got = _targets(["Mobile", "Name", "Patient", "Notes"], [],
                   {"mobile": "phone1", "Patient": "name", "NOTES": "skip"})
    assert got == {"Mobile": "phone", "Name": "var", "Patient": "name", "Notes": "skip"}


def test_explicit_var_target_and_missing_column_note() -> None:
    m = build_mapping(["phone", "ref"], [], {"ref": "var:Case Ref", "ghost": "email"})
    assert m.variables() == [("ref", "CASE_REF")]
    assert any("ghost" in n.lower() for n in m.notes)


def test_only_one_column_per_scalar_field() -> None:
    m = build_mapping(["email", "Email Address", "phone"])
    assert [c.target for c in m.columns] == ["email", "var", "phone"]
    assert m.notes


def test_more_than_ten_phone_columns_keep_ten() -> None:
    headers = [f"phone{i}" for i in range(1, 11)] + ["Other Phone"]
    m = build_mapping(headers)
    assert len(m.phone_headers()) == 10
    assert m.columns[-1].target == "var" and m.notes


@pytest.mark.parametrize(("text", "expected"), [
    ("name", ("name", None, None)), ("PHONE", ("phone", None, None)),
    ("phone7", ("phone", 7, None)), ("phone_2", ("phone", 2, None)),
    ("skip", ("skip", None, None)), ("var:case no", ("var", None, "CASE_NO")),
])
def test_parse_target(text: str, expected: tuple[str, int | None, str | None]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["phone11", "phone0", "emial", "var:", ""])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(MappingError):
        parse_target(text)


def test_two_explicit_columns_for_one_field_is_an_error() -> None:
    with pytest.raises(MappingError, match="both 'A' and 'B'"):
        build_mapping(["A", "B"], [], {"A": "name", "B": "name"})


def test_merge_explicit_override_wins_per_field() -> None:
    base = {"Patient": "name", "Mobile": "phone1", "Notes": "skip"}
    merged = merge_explicit(base, {"Kunde": "name", "Notes": "var:NOTE"})
    assert merged == {"Mobile": "phone1", "Notes": "var:NOTE", "Kunde": "name"}
    m = build_mapping(["Patient", "Kunde", "Mobile"], [], merged)
    assert m.scalar("name") == "Kunde"


def test_parse_map_option() -> None:
    assert parse_map_option("Mobile=phone1") == ("Mobile", "phone1")
    assert parse_map_option("a=b=phone") == ("a=b", "phone")
    for bad in ("Mobile", "=phone", "Mobile=", "Mobile=nonsense"):
        with pytest.raises(MappingError):
            parse_map_option(bad)
