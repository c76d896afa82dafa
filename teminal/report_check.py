"""``python -m teminal report <run> --check README.md``: is every figure of the README's Results
what the run's records give?

The reference is the text ``teminal.report.report`` prints for the run (parsed here, never
formatted a second time), so whatever ``report`` prints — tables, seed columns, paired
differences — is what the README must say. What the README's ``## Results`` section must look
like to be checkable:

- it names its run: a line with ``.venv/bin/teminal report runs/<name>`` (or ``python -m
  teminal report …``); ``<name>`` must be the
  checked run's folder name;
- **tables**: a pipe table under a heading (any level, e.g. ``#### ZSTE — held-out pairs``)
  whose title is one of the report's headings must have the report's header row, and every row
  of it (by its first cell) must be the report's row cell for cell; a table whose title the
  report does not print is a mismatch;
- **prose**: every figure with an interval, ``48.5 [45.4, 51.5]`` (signs allowed: ``+3.1 [-0.4,
  6.2]``), must be a cell the report prints, and every other decimal number (``5.8``) must be
  the value part of one; integers (``30 classes``, ``95 %``) and inline code are not checked,
  so write a derived figure (a difference) as ``report`` prints it. Lines between
  ``<!-- check:off -->`` and ``<!-- check:on -->`` (each alone on its line) are skipped (e.g. figures of another run,
  quoted for comparison).

``check(readme_text, report_text, run=...)`` returns the list of mismatches (empty: all true).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUM = r"[+\-−]?\d+(?:\.\d+)?"
FIGURE = re.compile(rf"(?<![\w.]){_NUM} \[{_NUM}, {_NUM}\]")
DECIMAL = re.compile(r"(?<![\w.\[/-])[+\-−]?\d+\.\d+(?!\w)(?!\.\d)")  # "5.8." at a sentence end too
RUN = re.compile(r"(?:python -m teminal|\S*teminal) report (?:\S*/)?runs/([\w.\-]+)")
OFF, ON = "<!-- check:off -->", "<!-- check:on -->"


@dataclass
class Table:
    """A pipe table: its header cells and its rows by label (``row_label``)."""

    header: list[str]
    rows: dict[str, list[str]] = field(default_factory=dict)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def row_label(cells: list[str]) -> str:
    """A row's label: its first cell and the label cells after it, up to the first value (a
    cell that is empty or starts with a number, bold or not), so rows that share a first cell —
    one setting, several phrasings and templates — stay apart."""
    n = 1
    while n < len(cells) and cells[n] and not re.match(r"\**[+\-−]?\d", cells[n]):
        n += 1
    return " | ".join(cells[:n])


def results_section(readme: str) -> str:
    """The ``## Results`` section of a README (to the next ``## `` heading); ``ValueError``
    when there is none."""
    match = re.search(r"^## Results[^\n]*\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    if match is None:
        raise ValueError("the README has no '## Results' section to check")
    return match.group(1)


def checked_lines(text: str) -> list[str]:
    """Lines of ``text`` outside ``<!-- check:off -->`` … ``<!-- check:on -->`` (each marker
    alone on its line)."""
    out, on = [], True
    for line in text.splitlines():
        if line.strip() == OFF:
            on = False
        elif line.strip() == ON:
            on = True
        elif on:
            out.append(line)
    return out


def parse(lines: list[str]) -> tuple[dict[str, Table], list[str]]:
    """Pipe tables by the title of the heading above them, and the prose lines."""
    tables: dict[str, Table] = {}
    prose: list[str] = []
    title, current = "", None
    for line in lines:
        if line.startswith("#"):
            title, current = line.lstrip("#").strip(), None
        elif line.lstrip().startswith("|"):
            cells = _cells(line)
            if current is None:
                current = tables.setdefault(title, Table(header=cells))
            elif not all(set(c) <= set("-: ") for c in cells):
                label = row_label(cells)
                if label in current.rows:  # the same label twice: keep both, in order
                    label += f" #{sum(k.split(' #')[0] == label for k in current.rows) + 1}"
                current.rows[label] = cells[1:]
        else:
            current = None
            prose.append(line)
    return tables, prose


def check(readme: str, report_text: str, *, run: str) -> list[str]:
    """Every mismatch between the README's Results and the report of run ``run`` (module doc)."""
    section = results_section(readme)
    problems = []
    named = set(RUN.findall(section))
    if not named:
        problems.append("Results: no line '.venv/bin/teminal report runs/<name>' names its run")
    problems += [f"Results: names run {n!r}, but the records checked are of run {run!r}"
                 for n in sorted(named - {run})]
    ours, prose = parse(checked_lines(section))
    theirs, _ = parse(report_text.splitlines())
    for title, table in ours.items():
        problems += _table_problems(title, table, theirs.get(title))
    cells = [c for t in theirs.values() for row in t.rows.values() for c in row]
    figures = {f for c in cells for f in FIGURE.findall(c)}  # also inside "… · seeds a–b"
    values = {n for c in cells for n in DECIMAL.findall(c)} | {
        n for f in figures for n in re.findall(_NUM, f)}
    for line in _paragraphs(prose):
        line = re.sub(r"`[^`]*`", " ", line)  # inline code (commands, paths) is not a figure
        for fig in FIGURE.findall(line):
            if fig not in figures:
                problems.append(f"prose: {fig!r} is not a figure of the report ({line.strip()[:80]!r})")
        for num in DECIMAL.findall(FIGURE.sub(" ", line)):
            if num not in values:
                problems.append(f"prose: {num!r} is not a value of the report ({line.strip()[:80]!r})")
    return problems


def _paragraphs(lines: list[str]) -> list[str]:
    """Prose lines joined into paragraphs and list items, so a figure wrapped over two lines
    (``75.4`` / ``[63.0, 84.7]``) is read whole."""
    out: list[str] = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith(("- ", "* ")) or not out or not out[-1]:
            out.append(text)
        else:
            out[-1] += " " + text
    return [p for p in out if p]


def _table_problems(title: str, ours: Table, theirs: Table | None) -> list[str]:
    where = f"table {title!r}" if title else "a table without a heading"
    if theirs is None:
        return [f"{where}: the report prints no table of that title"]
    if ours.header != theirs.header:
        return [f"{where}: columns {ours.header} differ from the report's {theirs.header}"]
    out = []
    for label, row in ours.rows.items():
        want = theirs.rows.get(label)
        if want is None:
            out.append(f"{where}: row {label!r} is not in the report")
            continue
        for col, a, b in zip(ours.header[1:], row, want):
            if a != b:
                out.append(f"{where}, row {label!r}, column {col!r}: README {a!r}, report {b!r}")
        if len(row) != len(want):
            out.append(f"{where}, row {label!r}: {len(row)} cells, the report has {len(want)}")
    return out
