"""The one formatter of tables and interval cells (``teminal.eval.tables``): the cells every
reader-facing table prints — report, notebooks, ablation, report card (SPEC §4, §5)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from teminal import ablation
from teminal.eval import tables
from teminal.eval.card import card_markdown
from teminal.eval.intervals import Interval
from teminal.eval.seed_stats import Figure
from teminal.eval.three import pick_triples, render_triple
from teminal.run.steps import Evaluation, set_comparison, zste_table
from teminal.run.keys import Kind


def _zste(values: dict[str, float], *, ci: float = 5.0) -> pd.DataFrame:
    chance = {"1A": 2.0, "3A": 100 / 3, "3B": 100 / 3, "3C": 100 / 6}
    return pd.DataFrame([dict(task=t, value=v, chance=chance[t], ci_low=v - ci, ci_high=v + ci,
                              n=40) for t, v in values.items()])


def test_interval_cell_with_and_without_an_interval():
    assert tables.interval_cell(48.46, 45.44, 51.55) == "48.5 [45.4, 51.5]"
    assert tables.interval_cell(48.46, np.nan, 51.5) == "48.5"
    assert tables.interval_cell(None, 1.0, 2.0) == ""
    assert tables.interval_cell(float("nan"), 1.0, 2.0, missing="–") == "–"
    assert tables.interval_cell(100.0, 92.04, 100.0, digits=2) == "100.00 [92.04, 100.00]"
    assert tables.number(float("inf")) == "–" and tables.number(16.666) == "16.7"
    assert tables.number(3, signed=True) == "+3.0" and tables.number(-0.04, signed=True) == "-0.0"


def test_figure_cell_shows_the_seed_range_and_flags_disagreeing_seeds():
    one = Figure(interval=Interval(50.0, 40.0, 60.0), margin=10.0)
    assert tables.figure_cell(one) == "50.0 [40.0, 60.0]"
    agree = Figure(interval=Interval(50.0, 40.0, 60.0, n_seeds=3, seed_min=48.0, seed_max=52.0),
                   margin=10.0)
    assert tables.figure_cell(agree) == "50.0 [40.0, 60.0] · seeds 48.0–52.0"
    split = Figure(interval=Interval(50.0, 20.0, 80.0, n_seeds=3, seed_min=10.0, seed_max=90.0),
                   margin=10.0)
    assert tables.figure_cell(split) == "**50.0 [20.0, 80.0] · seeds 10.0–90.0 ⚠**"


def test_difference_cell_is_signed_and_bold_when_it_excludes_zero():
    assert tables.difference_cell(Interval(3.0, -1.0, 7.0)) == "+3.0 [-1.0, +7.0]"
    assert tables.difference_cell(Interval(-3.0, -5.5, -0.5)) == "**-3.0 [-5.5, -0.5]**"


def test_zste_table_layout_and_paper_columns():
    class Result:  # anything with .table is accepted, like ZsteResult
        table = _zste({"1A": 80.04, "3A": 33.3})

    paper = pd.DataFrame({"task": ["1A", "3B"], "paper_clap": [81.22, 34.29]})
    out = tables.zste_table({"ours": Result(), "b": _zste({"1A": 1, "3A": 2, "3B": 3}, ci=np.nan)},
                            paper=paper)
    assert list(out.columns) == ["chance", "ours", "b", "paper: clap"]
    assert list(out.index) == ["1A", "3A", "3B"] and out.index.name == "task"
    assert out.loc["1A", "ours"] == "80.0 [75.0, 85.0]"
    assert out.loc["3B", "ours"] == "" and out.loc["3B", "b"] == "3.0"
    assert out.loc["3A", "chance"] == "33.3" and out.loc["1A", "chance"] == "2.0"
    assert out.loc["1A", "paper: clap"] == "81.22" and out.loc["3A", "paper: clap"] == ""
    with pytest.raises(ValueError, match="missing ZSTE columns"):
        tables.zste_table({"x": pd.DataFrame({"task": ["1A"]})})


def test_markdown_pipe_table():
    df = pd.DataFrame({"a": ["1.0 [0.5, 1.5]"], "b": [""]}, index=pd.Index(["3C"], name="task"))
    assert tables.markdown(df) == "| task | a | b |\n|---|---|---|\n| 3C | 1.0 [0.5, 1.5] |  |"


def test_every_table_a_reader_sees_prints_the_same_cell():
    """03's Table 3 and set comparison, 04's Table 2 and 05's card: one row, one string."""
    t = _zste({"1A": 80.04, "3A": 48.46, "3C": 20.0})
    t.loc[1, ["ci_low", "ci_high"]] = [45.44, 51.55]
    ev = Evaluation(label="T-AB", tag="B", key="k", kind=Kind.STAGE, tables={"zste": t})
    want = "48.5 [45.4, 51.5]"
    assert zste_table({"T-AB": ev}).loc["3A", "T-AB"] == want
    assert set_comparison({"T-AB": ev}).loc["3A", "T-AB: held-out pairs"] == want
    assert list(set_comparison({"T-AB": ev}).index) == ["1A", "3A", "3C"]  # 3C kept, in order
    outcome = pd.DataFrame([{"row": "T-AB", "kind": Kind.STAGE, "evaluation": ev}])
    assert ablation.table(outcome).loc["T-AB", "3A"] == want
    assert ablation.table(outcome).loc["chance", "3C"] == "16.7"

    class Report:  # the fields the card reads of a ``ModelReport``
        tables = {"zste": t}
        zero_shot = pd.DataFrame({"split": ["test"], "top1": [80.04]})
        retrieval: dict = {}
        compa = _zste({"3A": 48.46}).assign(task="3A-group", ci_low=45.44, ci_high=51.55)
        rule = type("Rule", (), dict(sample_rate=16000, window_seconds=None, longer="whole",
                                     shorter="whole"))()

    card = card_markdown({"T-AB": Report()})
    assert f"| 3A | 33.3 | {want} |" in card and f"| 3A-group | 33.3 | {want} |" in card
    assert "| test | 80.0 |" in card


def test_triples_are_drawn_not_the_first_ones():
    triples = np.array([[a, b, c] for a in range(8) for b in range(a + 1, 8)
                        for c in range(b + 1, 8)])  # (56, 3), sorted: the first all hold 0, 1
    pick = pick_triples(triples, 6, seed=0)
    assert pick.shape == (6, 3) and len(np.unique(pick)) > 4
    np.testing.assert_array_equal(pick, pick_triples(triples, 6, seed=0))
    assert not np.array_equal(pick, pick_triples(triples, 6, seed=1))
    np.testing.assert_array_equal(pick_triples(triples, 100, seed=0), triples)


def test_render_triple_names_a_bad_key():
    with pytest.raises(ValueError, match="not a three-event audio key"):
        render_triple("seq|a.wav|b.wav", lambda f: np.zeros(4, np.float32), recipe=None)
