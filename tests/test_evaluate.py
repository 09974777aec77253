import json
import math

import pytest

from related.config import Settings
from related.db import ResultRow
from related.entries import Entries, Entry
from related.errors import ConfigError
from related.evaluate import (
    Evaluation,
    evaluate,
    format_table,
    load_truth,
    ndcg,
    parse_truth_csv,
    parse_truth_json,
    rankings_from_rows,
    symmetrise,
)
from related.pipeline import compute_related


def test_hand_computed_example():
    truth = {1: (2, 3), 4: (5,), 6: (7,), 10: ()}
    rankings = {1: [3, 9, 2], 4: [8, 5], 10: [1]}
    result = evaluate(rankings, truth)
    # entry 1: hits at ranks 1 and 3 of 2 relevant; entry 4: hit at rank 2; entry 6: nothing.
    # Entry 10 has no links and is not counted.
    ndcg_1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_4 = (1 / math.log2(3)) / 1
    assert result.entries == 3
    assert result.links == 4
    assert result.ndcg_at_10 == pytest.approx((ndcg_1 + ndcg_4 + 0) / 3)
    assert result.recall_at_10 == pytest.approx((1 + 1 + 0) / 3)
    assert result.precision_at_5 == pytest.approx((2 / 5 + 1 / 5 + 0) / 3)
    assert result.mrr_at_10 == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert result.coverage == pytest.approx(2 / 3)
    assert set(result.to_dict()) == {
        "entries",
        "links",
        "ndcg_at_10",
        "recall_at_10",
        "precision_at_5",
        "mrr_at_10",
        "coverage",
    }


def test_cut_offs_at_10_and_5_and_ideal_capped_at_10():
    relevant = tuple(range(100, 112))  # 12 relevant entries
    perfect_first_ten = {1: list(range(100, 112))}
    result = evaluate(perfect_first_ten, {1: relevant})
    assert result.ndcg_at_10 == pytest.approx(1.0)  # ideal list also has only 10 places
    assert result.recall_at_10 == pytest.approx(10 / 12)
    assert result.precision_at_5 == pytest.approx(1.0)
    late = {1: [*range(1000, 1010), 100]}  # the only hit is at rank 11
    assert evaluate(late, {1: relevant}) == Evaluation(1, 12, 0.0, 0.0, 0.0, 0.0, 1.0)


def test_precision_counts_missing_neighbours_as_misses():
    result = evaluate({1: [2]}, {1: (2,)})
    assert result.precision_at_5 == pytest.approx(1 / 5)
    assert result.ndcg_at_10 == result.recall_at_10 == result.mrr_at_10 == 1.0


def test_no_judged_entries_gives_zeros():
    assert evaluate({1: [2]}, {1: ()}) == Evaluation(0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_ndcg_single_hit_at_rank_3():
    assert ndcg(["x", "y", "z"], {"z"}) == pytest.approx(0.5)


def test_json_truth_with_integer_ids():
    truth = parse_truth_json('{"1": [2, 3, 3, 1], "4": ["5"], "6": []}')
    # repeats and self-links dropped; ids written like ints become ints
    assert truth == {1: (2, 3), 4: (5,), 6: ()}


def test_json_truth_with_text_ids_keeps_text():
    # "007" is not written like an int, so every id stays text (7 becomes "7")
    truth = parse_truth_json('{"first-post": ["007", 7]}')
    assert truth == {"first-post": ("007", "7")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must be a JSON object mapping an entry id to a list"),
        ('{"1": 2}', "the value of '1' must be a list of related ids"),
        ('{"1": [true]}', "related id True of entry '1' must be a number or a string"),
        ("{", "is not valid JSON"),
    ],
)
def test_json_truth_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_truth_json(text, source="pairs.json")


def test_csv_truth_with_header_and_blank_lines():
    text = "entry_id,related_entry_id\n1,2\n\n1, 3\n2,1\n"
    assert parse_truth_csv(text) == {1: (2, 3), 2: (1,)}


def test_csv_truth_bad_line_names_the_line():
    with pytest.raises(ConfigError) as info:
        parse_truth_csv("a,b\nc\n", source="pairs.csv")
    assert str(info.value) == (
        "pairs.csv line 2: expected two ids, entry_id,related_entry_id (got 'c')."
    )


def test_load_truth_reads_json_and_csv_files(tmp_path):
    (tmp_path / "truth.json").write_text(json.dumps({"10": [11]}), encoding="utf-8")
    (tmp_path / "truth.csv").write_text("a-post,b-post\n", encoding="utf-8")
    assert load_truth(tmp_path / "truth.json") == {10: (11,)}
    assert load_truth(tmp_path / "truth.csv") == {"a-post": ("b-post",)}
    with pytest.raises(ConfigError, match="does not exist. Check --truth"):
        load_truth(tmp_path / "missing.csv")


def test_symmetrise_adds_reverse_links():
    assert symmetrise({1: (2,), 3: (2, 1)}) == {1: (2, 3), 3: (2, 1), 2: (1, 3)}


def test_rankings_from_rows_orders_by_rank_then_by_score_without_rank():
    rows = [
        ResultRow(1, 5, 0.2, 2),
        ResultRow(1, 4, 0.9, 1),
        ("a", "c", 0.1, None),
        ("a", "b", 0.7, None),
    ]
    assert rankings_from_rows(rows) == {1: [4, 5], "a": ["b", "c"]}


def test_format_table_aligns_methods_and_metrics():
    table = format_table(
        {
            "default": Evaluation(3, 4, 0.5, 0.25, 0.2, 1 / 3, 1.0),
            "baseline": Evaluation(3, 4, 0.125, 0.0, 0.0, 0.0, 0.5),
        }
    )
    assert table.splitlines() == [
        "          nDCG@10  recall@10    P@5  MRR@10  coverage  entries",
        "default     0.500      0.250  0.200   0.333     1.000        3",
        "baseline    0.125      0.000  0.000   0.000     0.500        3",
    ]


def test_scores_a_fresh_computation_of_the_pipeline():
    # Real MeCab on three tiny entries: the two about coffee must find each other first.
    entries = Entries(
        items=(
            Entry(1, "コーヒーの淹れ方", "ハンドドリップでコーヒー豆を挽いて淹れる。"),
            Entry(2, "コーヒー豆の焙煎", "コーヒー豆を焙煎して挽く。"),
            Entry(3, "自転車の整備", "自転車のチェーンに油を差す。"),
        ),
        id_type="INTEGER",
    )
    related = compute_related(entries, Settings())
    result = evaluate(rankings_from_rows(related.rows), {1: (2,), 2: (1,)})
    assert result.entries == 2
    assert result.mrr_at_10 == 1.0
    assert result.ndcg_at_10 == 1.0
    assert result.coverage == 1.0


def test_evaluate_stored_reads_the_results_table_of_a_real_sqlite_run(tmp_path):
    from related.db import ResultsLayout, connect
    from related.errors import SourceError
    from related.evaluate import evaluate_stored
    from related.pipeline import run_job
    from related.sample import create_sample_database

    url = f"sqlite:///{tmp_path / 'blog.db'}"
    create_sample_database(tmp_path / "blog.db")
    settings = Settings(database_url=url)
    layout = ResultsLayout.from_settings(settings.output)
    with connect(url) as db, pytest.raises(SourceError, match="does not exist yet"):
        evaluate_stored(db, {1: (2,)}, layout=layout)
    run_job(settings)
    with connect(url) as db:
        stored = db.read_results(layout)
        first = min(r.entry_id for r in stored)
        best = next(r.related_entry_id for r in stored if r.entry_id == first and r.rank == 1)
        result = evaluate_stored(db, {first: (best,)}, layout=layout)
    assert result.entries == 1
    assert result.mrr_at_10 == 1.0
    assert result.coverage == 1.0
