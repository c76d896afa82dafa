"""``report --check``: the README's Results against the text ``report`` prints (SPEC §4)."""
from __future__ import annotations

import pandas as pd
import pytest

from teminal.eval import tables
from teminal.report_check import check, results_section


def _report_text() -> str:
    """Report text made by ``teminal.report``'s formatter (``teminal.eval.tables``) from two
    models' tables."""
    def table(values):
        return pd.DataFrame({"task": ["3A", "3B", "3W"], "value": values, "chance": [33.33, 33.33, 50.0],
                             "ci_low": [v - 3.04 for v in values], "ci_high": [v + 2.96 for v in values]})
    models = {"pretrained": table([30.0, 46.2, 51.0]), "T-AB": table([48.5, 95.4, 62.25])}
    df = pd.DataFrame({"chance": tables.chance_cells(models["T-AB"]),
                       **{m: tables.cells(t) for m, t in models.items()}})
    df.index.name = "task"
    return ("Results of run `r1`.\n\n### ZSTE — held-out pairs\n\n" + tables.markdown(df)
            + "\n\n### Paired differences\n\n| task | T-AB − pretrained |\n|---|---|\n"
              "| 3B | +49.2 [41.0, 57.3] |\n")


def _readme(body: str, run: str = "r1") -> str:
    return (f"# x\n\n## Results\n\nEverything below is `python -m teminal report runs/{run}`.\n\n"
            + body + "\n## Performance\n\n1.5 s, 3.7 GiB\n")


def _table(text: str) -> str:
    start = text.index("### ZSTE")
    return "#" + text[start:text.index("\n\n###", start)] + "\n"


def test_a_readme_that_says_what_the_report_says_passes():
    text = _report_text()
    body = (_table(text) + "\nT-AB answers while 95.4 [92.4, 98.4] of the time; pretrained 46.2, "
            "a gain of +49.2 [41.0, 57.3] (paired), on 30 classes, 95 % intervals, `lr=0.001`.\n")
    assert check(_readme(body), text, run="r1") == []


def test_each_wrong_figure_is_listed():
    text = _report_text()
    wrong_cell = _table(text).replace("48.5 [45.5, 51.5]", "48.2 [45.5, 51.5]")
    body = wrong_cell + "\nThe gain is 5.8 points; T-AB 3B 95.4 [91.5, 98.5]; 3A 48.5 [45.5, 51.5].\n"
    problems = check(_readme(body), text, run="r1")
    assert any("row '3A', column 'T-AB'" in p and "'48.2 [45.5, 51.5]'" in p for p in problems)
    assert any("'95.4 [91.5, 98.5]' is not a figure" in p for p in problems)
    assert any("'5.8' is not a value" in p for p in problems)
    assert len(problems) == 3, problems


def test_run_name_columns_unknown_tables_and_skipped_lines():
    text = _report_text()
    assert any("names run 'r0'" in p for p in check(_readme(""), text, run="r0") + check(_readme("", "r0"), text, run="r1"))
    assert any("no line" in p for p in check("## Results\n\nnothing\n", text, run="r1"))
    renamed = _table(text).replace("| T-AB |", "| T-B |")
    assert any("columns" in p for p in check(_readme(renamed), text, run="r1"))
    assert any("prints no table" in p for p in check(_readme("#### Elsewhere\n\n| a | b |\n|---|---|\n| x | 1.0 |\n"), text, run="r1"))
    quoted = "<!-- check:off -->\nThe previous run had 3A 48.2 [45.4, 51.5].\n<!-- check:on -->\n"
    assert check(_readme(quoted), text, run="r1") == []
    mention = "Skip with `<!-- check:off -->` … `<!-- check:on -->`; see `runs/<run>`.\n3A 48.2.\n"
    problems = check(_readme(mention), text, run="r1")  # inline code skipped, 48.2 checked
    assert len(problems) == 1 and problems[0].startswith("prose: '48.2' is not a value of")
    wrapped = "A figure wrapped over lines, 48.5\n[45.5, 51.5], is read whole.\n"
    assert check(_readme(wrapped), text, run="r1") == []
    with pytest.raises(ValueError, match="Results"):
        results_section("# no results here\n")


def test_rows_that_share_a_first_cell_are_each_checked():
    """The order tasks' template table repeats its setting on every template row: each row is
    compared, not only the last one of a setting."""
    report = ("Results of run `r1`.\n\n### Order tasks\n\n| setting | phrasing | template | 3A-o |\n"
              "|---|---|---|---|\n| T-AB (5 seeds) | held-out | `{x} precedes {y}` | 87.2 (≥ 85.0) |\n"
              "| T-AB (5 seeds) | held-out | `{y} comes later than {x}` | 18.7 (≥ 15.0) |\n"
              "| T-AB (5 seeds) | trained | — | **30.8 (≥ 29.2)** |\n")
    table = "#" + report[report.index("## Order"):]
    assert check(_readme(table + "\nIt reads the mirror one backwards: 18.7.\n"), report, run="r1") == []
    wrong = table.replace("87.2 (≥ 85.0)", "88.2 (≥ 85.0)")
    problems = check(_readme(wrong + "\nIt reads it backwards: 19.7.\n"), report, run="r1")
    assert any("row 'T-AB (5 seeds) | held-out | `{x} precedes {y}`'" in p and "88.2" in p
               for p in problems), problems
    assert any("'19.7' is not a value" in p for p in problems) and len(problems) == 2, problems
