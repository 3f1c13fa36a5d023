"""Hostile CSV input: encodings, delimiters, broken quotes, huge cells, formula export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from televox_pbx.campaigns.csvio import (
    MAX_FIELD_CHARS,
    decode,
    parse_text,
    read_csv,
    safe_cell,
    sniff_delimiter,
    write_csv,
    write_rows,
)


def test_utf8_with_and_without_bom() -> None:
    body = "name,phone\nJosé,2025550100\n"
    for data in (body.encode("utf-8"), b"\xef\xbb\xbf" + body.encode("utf-8")):
        text, enc = decode(data)
        assert enc == "utf-8"
        table = parse_text(text)
        assert table.headers == ["name", "phone"]  # no BOM glued to the first header
        assert table.rows[0].values["name"] == "José"


def test_latin1_and_cp1252_fallback() -> None:
    text, enc = decode("name,phone\nJosé “Pepe”,2025550100\n".encode("cp1252"))
    assert enc == "cp1252"
    assert parse_text(text).rows[0].values["name"] == "José “Pepe”"
    # 0x81 is undefined in cp1252: latin-1 still decodes the line.
    text, enc = decode(b"name\nA\x81B\n")
    assert "latin-1" in enc and "A\x81B" in text


def test_mixed_encodings_decode_line_by_line() -> None:
    data = "name,phone\nZoë,2025550100\n".encode() + "Renée,2025550101\n".encode("latin-1")
    text, enc = decode(data)
    assert enc == "utf-8+cp1252"
    names = [r.values["name"] for r in parse_text(text).rows]
    assert names == ["Zoë", "Renée"]


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_delimiter_sniffing(delim: str) -> None:
    text = delim.join(["name", "phone", "note"]) + "\n" + \
        delim.join(["Ann", "2025550100", "a, b; c"]) + "\n"
    if delim != ",":
        text = text.replace("a, b; c", "x")
    assert sniff_delimiter(text.splitlines(keepends=True)) == delim
    table = parse_text(text)
    assert table.delimiter == delim
    assert table.rows[0].values["phone"] == "2025550100"


def test_semicolons_with_commas_in_values() -> None:
    text = "Name;Phone;Amount\nSmith, Ann;2025550100;1,50\nLee, Bo;2025550101;2,75\n"
    table = parse_text(text)
    assert table.delimiter == ";"
    assert [r.values["Amount"] for r in table.rows] == ["1,50", "2,75"]


def test_quoted_newlines_kept_and_line_numbers_right() -> None:
    text = 'name,phone,notes\nAnn,2025550100,"line one\nline two"\nBo,2025550101,x\n'
    table = parse_text(text)
    assert table.rows[0].values["notes"] == "line one\nline two"
    assert [(r.number, r.line) for r in table.rows] == [(1, 2), (2, 4)]


def test_broken_quote_costs_only_its_line() -> None:
    text = 'name,phone\n"Bob,2025550100\nAlice,2025550101\nCarol,"2025550102"\nDan,2025550103\n'
    table = parse_text(text)
    broken = [r for r in table.rows if r.error]
    assert len(broken) == 1 and broken[0].line == 2 and "quote" in (broken[0].error or "")
    assert broken[0].raw == '"Bob,2025550100'
    good = [r.values["name"] for r in table.rows if not r.error]
    assert good == ["Alice", "Carol", "Dan"]


def test_unterminated_quote_at_end_is_reported() -> None:
    table = parse_text('name,phone\nAnn,2025550100\nBo,"2025550101\n')
    assert table.rows[0].error is None
    assert table.rows[1].error == "unbalanced quote"


def test_stray_quote_inside_a_field_is_data() -> None:
    table = parse_text('name,phone\nO"Brien,2025550100\n')
    assert table.rows[0].values["name"] == 'O"Brien' and table.rows[0].error is None


def test_one_megabyte_cell_reads_and_absurd_cell_is_reported() -> None:
    big = "x" * (1024 * 1024)
    table = parse_text(f"name,phone,notes\nAnn,2025550100,{big}\nBo,2025550101,ok\n")
    assert len(table.rows[0].values["notes"]) == len(big)
    assert table.rows[1].values["name"] == "Bo"
    absurd = "y" * (MAX_FIELD_CHARS + 10)
    table = parse_text(f"name,phone,notes\nAnn,2025550100,{absurd}\nBo,2025550101,ok\n")
    assert table.rows[0].error is not None and "field" in table.rows[0].error
    assert table.rows[1].values["name"] == "Bo"


def test_nul_byte_does_not_crash() -> None:
    table = parse_text("name,phone\nA\x00n,2025550100\nBo,2025550101\n")
    assert len(table.rows) == 2
    assert table.rows[1].values["name"] == "Bo"


def test_nested_headers_are_joined() -> None:
    text = ("Contact,,Phones,,\nName,Email,Home,Work,Mobile\n"
            "Ann,ann@example.com,2025550100,,2025550101\n")
    table = parse_text(text)
    assert table.header_rows == 2
    assert table.headers == ["Contact Name", "Contact Email", "Phones Home", "Phones Work",
                             "Phones Mobile"]
    assert table.rows[0].values["Phones Mobile"] == "2025550101"


def test_single_header_with_gappy_first_data_row_is_not_nested() -> None:
    table = parse_text("name,phone,email\nAnn,2025550100,\nBo,2025550101,b@example.com\n")
    assert table.header_rows == 1 and len(table.rows) == 2
    table = parse_text("name,phone,\nAnn,2025550100,x\n")
    assert table.header_rows == 1 and table.headers == ["name", "phone", "column_3"]


def test_duplicate_headers_and_ragged_rows() -> None:
    table = parse_text("Phone,phone,name\n2025550100,2025550101,Ann\n2025550102\n"
                       "2025550103,2025550104,Bo,extra\n2025550105,,Cy,,\n")
    assert table.headers == ["Phone", "phone_2", "name"]
    assert table.rows[1].values == {"Phone": "2025550102"}  # short row: missing cells
    assert table.rows[2].error is not None and "4 fields" in table.rows[2].error
    assert table.rows[3].error is None  # trailing empty cells are spreadsheet noise


def test_blank_lines_skipped_and_counted() -> None:
    table = parse_text("name,phone\n\nAnn,2025550100\n,\n\n")
    assert len(table.rows) == 1 and table.blank_rows == 3


def test_empty_and_header_only_files() -> None:
    assert parse_text("").rows == [] and parse_text("").headers == []
    table = parse_text("name,phone\n")
    assert table.headers == ["name", "phone"] and table.rows == []


@pytest.mark.parametrize("cell", ["=1+1", "+15550198000", "-2", "@SUM(A1)", "\tx", "\rx",
                                  "=HYPERLINK(\"http://evil\")"])
def test_formula_cells_neutralised(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell
    buf = io.StringIO()
    write_rows(buf, ["h"], [[cell]])
    back = list(csv.reader(io.StringIO(buf.getvalue())))
    assert back[1][0] == "'" + cell


def test_plain_cells_untouched() -> None:
    assert safe_cell("Ann") == "Ann"
    assert safe_cell(None) == ""
    assert safe_cell(42) == "42"


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    rows = [["Ann", "+15550198000", "multi\nline", 'say "hi"'], ["=cmd", "", "é", ";|"]]
    assert write_csv(path, ["name", "phone", "notes", "q"], rows) == 2
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    table = read_csv(path)
    assert table.headers == ["name", "phone", "notes", "q"]
    assert table.rows[0].values["notes"] == "multi\nline"
    assert table.rows[0].values["phone"] == "'+15550198000"
    assert table.rows[1].values["name"] == "'=cmd"


def test_utf16_excel_unicode_text(tmp_path: Path) -> None:
    path = tmp_path / "u16.txt"
    path.write_bytes("name\tphone\nŁukasz\t2025550100\n".encode("utf-16"))
    table = read_csv(path)
    assert table.encoding == "utf-16" and table.delimiter == "\t"
    assert table.rows[0].values == {"name": "Łukasz", "phone": "2025550100"}
