"""`related eval` and `related explain` end to end on a real SQLite file."""

from __future__ import annotations

import json
from collections import defaultdict

from conftest import sqlite_rows

from related.evaluate import evaluate, rankings_from_rows
from related.sample import sample_entries

SAMPLE_FLAGS = ("--tags-column", "tags", "--source-where", "published = 1")


def topic_truth() -> dict[str, list[int]]:
    """Every published sample entry is related to the others of its topic."""
    by_topic = defaultdict(list)
    for e in sample_entries():
        if e["published"]:
            by_topic[e["category"]].append(e["id"])
    return {str(i): [j for j in ids if j != i] for ids in by_topic.values() for i in ids}


def test_eval_scores_stored_results_and_dry_runs(invoke, sample_sqlite, tmp_path):
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps(topic_truth()), encoding="utf-8")
    assert invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS).exit_code == 0

    result = invoke(
        "eval", "--database-url", sample_sqlite, "--truth", str(truth_file), "--format", "json"
    )
    assert result.exit_code == 0, result.output
    stored = json.loads(result.stdout)
    truth = {int(k): tuple(v) for k, v in topic_truth().items()}
    expected = evaluate(rankings_from_rows(sqlite_rows(sample_sqlite)), truth)
    assert stored == expected.to_dict()
    assert stored["entries"] == 37 and stored["coverage"] == 1.0
    assert stored["precision_at_5"] > 0.6  # the sample topics are well separated

    text = invoke("eval", "--database-url", sample_sqlite, "--truth", str(truth_file))
    header, row = text.stdout.splitlines()[:2]
    assert header.split()[-6:] == ["nDCG@10", "recall@10", "P@5", "MRR@10", "coverage", "entries"]
    assert f"{stored['ndcg_at_10']:.3f}" in row

    # A dry run scores new settings without writing: one neighbour cannot recall four.
    before = sqlite_rows(sample_sqlite)
    fresh = invoke(
        "eval",
        "--database-url",
        sample_sqlite,
        "--truth",
        str(truth_file),
        "--dry-run",
        "--top-k",
        "1",
        *SAMPLE_FLAGS,
        "--format",
        "json",
    )
    assert fresh.exit_code == 0, fresh.output
    one = json.loads(fresh.stdout)
    best_possible = sum(1 / len(links) for links in truth.values()) / len(truth)
    assert one["recall_at_10"] <= best_possible + 1e-12 < stored["recall_at_10"]
    assert sqlite_rows(sample_sqlite) == before


def test_eval_reads_csv_pairs_and_rejects_bad_files(invoke, sample_sqlite, tmp_path):
    assert invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS).exit_code == 0
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("entry_id,related_entry_id\n1,17\n1,25\n2,18\n", encoding="utf-8")
    result = invoke(
        "eval", "--database-url", sample_sqlite, "--truth", str(pairs), "--format", "json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == 2 and json.loads(result.stdout)["links"] == 3

    bad = tmp_path / "bad.json"
    bad.write_text('{"1": [2, 3', encoding="utf-8")
    result = invoke("eval", "--database-url", sample_sqlite, "--truth", str(bad))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and "bad.json" in result.stderr
    assert "Traceback" not in result.output


def test_explain_contributions_add_up_to_the_stored_score(invoke, sample_sqlite):
    assert invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS).exit_code == 0
    stored = {(a, b): s for a, b, s, _ in sqlite_rows(sample_sqlite)}
    a = 1
    b = max((pair for pair in stored if pair[0] == a), key=stored.get)[1]
    result = invoke(
        "explain",
        str(a),
        str(b),
        "--database-url",
        sample_sqlite,
        *SAMPLE_FLAGS,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    explanation = json.loads(result.stdout)
    assert abs(explanation["score"] - stored[(a, b)]) < 1e-9
    contributions = [t["weight_a"] * t["weight_b"] for t in explanation["shared"]]
    assert abs(sum(contributions) - stored[(a, b)]) < 1e-9
    assert contributions == sorted(contributions, reverse=True)
    shared = {t["term"] for t in explanation["shared"]}
    assert not shared & {t["term"] for t in explanation["only_a"]}

    text = invoke("explain", str(a), str(b), "--database-url", sample_sqlite, *SAMPLE_FLAGS)
    assert text.stdout.splitlines()[0].startswith(f"{a} ~ {b}: cosine {stored[(a, b)]:.3f}")
    assert explanation["shared"][0]["term"] in text.stdout

    missing = invoke("explain", "1", "9999", "--database-url", sample_sqlite)
    assert missing.exit_code == 2
    assert missing.stderr.startswith("Error: Entry 9999 is not among the 40 entries read.")
