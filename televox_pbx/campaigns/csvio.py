"""Reading hostile CSV files, and the one safe CSV writer every export goes through.

Reading never raises on bad content: undecodable bytes fall back per line to cp1252 or
latin-1, a broken quote costs only its own line (reported), and oversized fields are
reported rows. Writing neutralises spreadsheet formulas (CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from televox_pbx.campaigns.mapping import SourceRow
from televox_pbx.campaigns.phones import looks_like_phone

DELIMITERS = (",", ";", "\t", "|")
# csv's own per-field limit (default 128 KiB) is raised to this; a bigger field ends its row.
MAX_FIELD_CHARS = 4 * 1024 * 1024
# Leading characters a spreadsheet may execute as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SNIFF_LINES = 50


@dataclass(frozen=True, slots=True)
class CsvTable:
    headers: list[str]
    rows: list[SourceRow]
    encoding: str
    delimiter: str
    header_rows: int
    blank_rows: int  # fully empty lines skipped (not contacts, not counted as rows)


class _Feed:
    """Line iterator that remembers how many lines csv.reader has pulled."""

    __slots__ = ("lines", "pos")

    def __init__(self, lines: list[str], pos: int) -> None:
        self.lines = lines
        self.pos = pos

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding used: UTF-16 with a BOM, utf-8 (BOM stripped) or, failing
    that, line by line utf-8 / cp1252 / latin-1 so one stray Latin-1 line cannot garble
    the rest."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" export
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    used: set[str] = set()
    parts = []
    for raw in data.split(b"\n"):
        for enc in ("utf-8", "cp1252", "latin-1"):
            try:
                parts.append(raw.decode(enc))
            except UnicodeDecodeError:
                continue
            if enc != "utf-8" or not raw.isascii():
                used.add(enc)
            break
    name = "+".join(sorted(used, key=("utf-8", "cp1252", "latin-1").index)) or "utf-8"
    return "\n".join(parts), name


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The candidate giving the most rows with the same field count (>1); ',' on ties."""
    sample = [ln for ln in lines[:_SNIFF_LINES] if ln.strip()]
    best, best_score = ",", (0, 0)
    for delim in DELIMITERS:
        counts: dict[int, int] = {}
        try:
            for rec in csv.reader(sample, delimiter=delim, strict=False):
                counts[len(rec)] = counts.get(len(rec), 0) + 1
        except csv.Error:
            continue
        width, rows = max(counts.items(), key=lambda kv: (kv[1], kv[0]), default=(0, 0))
        score = (rows, width) if width > 1 else (0, 0)
        if score > best_score:
            best, best_score = delim, score
    return best


def _records(lines: list[str], delim: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(start line index, fields or None, error). A multi-line record whose field count
    differs from the header's is a broken quote: that line is reported and parsing
    resumes on the next line, so one stray quote cannot swallow the rest of the file."""
    expected: int | None = None
    pos = 0
    while pos < len(lines):
        feed = _Feed(lines, pos)
        reader = csv.reader(feed, delimiter=delim, strict=False)
        while True:
            start = feed.pos
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, None, f"unreadable CSV: {exc}"
                pos = start + 1
                break
            if not fields:
                yield start, [], None
                continue
            if expected is None:
                expected = len(fields)
            spanned = feed.pos - start > 1
            if (spanned and len(fields) != expected) or (
                    feed.pos == len(lines) and _open_quote_at_eof(lines, start, feed.pos, delim)):
                yield start, None, "unbalanced quote"
                pos = start + 1
                break
            yield start, fields, None
        else:  # pragma: no cover - the inner loop only leaves by return or break
            return


def _open_quote_at_eof(lines: list[str], start: int, end: int, delim: str) -> bool:
    """Did the file end inside a quoted field? (strict mode says so; lenient mode hides it)."""
    try:
        list(csv.reader(lines[start:end], delimiter=delim, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _header_like(cell: str) -> bool:
    c = cell.strip()
    return bool(c) and len(c) <= 64 and "@" not in c and not looks_like_phone(c) \
        and sum(ch.isdigit() for ch in c) <= len(c) // 2


def _nested(first: list[str], second: list[str]) -> bool:
    """Two header rows, as spreadsheets export merged group cells: the first row has gaps
    after its group labels and the second is complete and looks like labels, not data."""
    if len(first) < 2 or not first[0].strip() or all(c.strip() for c in first):
        return False
    return len(second) >= len(first) and all(_header_like(c) for c in second[:len(first)])


def _join_headers(first: list[str], second: list[str]) -> list[str]:
    group, out = "", []
    for i, sub in enumerate(second):
        if i < len(first) and first[i].strip():
            group = first[i].strip()
        sub = sub.strip()
        out.append(f"{group} {sub}".strip() if group else sub)
    return out


def _unique(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, h in enumerate(headers):
        name = h.strip() or f"column_{i + 1}"
        seen[name.lower()] = seen.get(name.lower(), 0) + 1
        if seen[name.lower()] > 1:
            name = f"{name}_{seen[name.lower()]}"
        out.append(name)
    return out


def parse_text(text: str, *, delimiter: str | None = None, header_rows: int | None = None,
               encoding: str = "utf-8") -> CsvTable:
    """Parse CSV text: first non-blank record(s) are the header."""
    if csv.field_size_limit() < MAX_FIELD_CHARS:
        csv.field_size_limit(MAX_FIELD_CHARS)
    lines = list(io.StringIO(text, newline=""))
    delim = delimiter or sniff_delimiter(lines)
    recs: list[tuple[int, list[str] | None, str | None]] = []
    blank = 0
    for start, fields, error in _records(lines, delim):
        if fields is not None and not "".join(fields).strip():
            blank += 1
        else:
            recs.append((start, fields, error))
    hi = next((i for i, r in enumerate(recs) if r[1] is not None), None)
    if hi is None:  # no header at all: every unreadable line is still a reported row
        return CsvTable([], [_row(i + 1, s + 1, [], f, e, _raw(lines, s, f))
                                  for i, (s, f, e) in enumerate(recs)],
                        encoding, delim, 0, blank)
    first = recs[hi][1] or []
    second = recs[hi + 1][1] if hi + 1 < len(recs) else None
    nested = second is not None and header_rows != 1 and (
        header_rows == 2 or _nested(first, second))
    if nested and second is not None:
        headers, used = _unique(_join_headers(first, second)), 2
    else:
        headers, used = _unique(first), 1
    data = recs[:hi] + recs[hi + used:]
    width = len(headers)
    # Well-formed rows (nearly all) take the inline branch; _row handles the rest.
    rows = [SourceRow(i + 1, dict(zip(headers, f, strict=False)), s + 1)
            if f is not None and len(f) <= width else
            _row(i + 1, s + 1, headers, f, e, _raw(lines, s, f))
            for i, (s, f, e) in enumerate(data)]
    return CsvTable(headers, rows, encoding, delim, used, blank)


def _row(number: int, line: int, headers: list[str], fields: list[str] | None,
         error: str | None, raw: str | None = None) -> SourceRow:
    if fields is None:
        return SourceRow(number, {}, line, error or "unreadable row", raw)
    if len(fields) > len(headers) and any(f.strip() for f in fields[len(headers):]):
        values = dict(zip(headers, fields, strict=False))
        return SourceRow(number, values, line,
                         f"{len(fields)} fields but the header has {len(headers)}")
    return SourceRow(number, dict(zip(headers, fields, strict=False)), line)


def _raw(lines: list[str], start: int, fields: list[str] | None) -> str | None:
    """The physical line of an unreadable row, capped, so a rejects file can show it."""
    return lines[start][:1000].rstrip("\r\n") if fields is None else None


def read_csv(path: Path, *, delimiter: str | None = None,
             header_rows: int | None = None) -> CsvTable:
    text, encoding = decode(path.read_bytes())
    return parse_text(text, delimiter=delimiter, header_rows=header_rows, encoding=encoding)


def safe_cell(value: object) -> str:
    """Text a spreadsheet will not run: formula-like cells get a leading apostrophe."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def write_rows(out: IO[str], header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write header + rows through the formula guard; returns the number of data rows."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    n = 0
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        n += 1
    return n


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """The safe writer for every export (contacts, results, rejects, DNC). UTF-8 with a
    BOM so spreadsheets detect the encoding; our own reader strips it again."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        return write_rows(fh, header, rows)
