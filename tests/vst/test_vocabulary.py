"""The format's vocabulary: one set of roles, placeholders and think tags, read alike by ingest, checks and exports."""

from __future__ import annotations

import json

import duckdb

import exports.base
from curation.ingest.run import ingest
from curation.vst import vocabulary as v
from tests.support.checks_helpers import run, sample
from tests.support.shards import sft_row, write_sft


def test_exports_repeat_the_vocabulary_exactly():
    """Exports may not import curation, so they hold their own copy: it must say the same."""
    assert exports.base.HUMAN_ROLES == v.HUMAN_ROLES and exports.base.ASSISTANT_ROLES == v.ASSISTANT_ROLES
    assert exports.base.SYSTEM_ROLE == v.SYSTEM_ROLE and exports.base.THINK_CLOSE == v.THINK_CLOSE
    assert exports.base.PLACEHOLDERS == v.PLACEHOLDERS
    assert (exports.base.IMAGE_PAD, exports.base.VIDEO_PAD, exports.base.IMAGE_TAG, exports.base.VIDEO_TAG) == (
        v.IMAGE_PAD, v.VIDEO_PAD, v.IMAGE_TAG, v.VIDEO_TAG)


def test_placeholder_pattern_matches_each_token_literally_in_python_and_duckdb():
    text = "<image>a<|image_pad|>b<video>c<|video_pad|>d<imagex><|image-pad|>"
    assert v.PLACEHOLDER_RE.sub("", text) == "abcd<imagex><|image-pad|>"
    pattern = v.alternation(v.PLACEHOLDERS)
    con = duckdb.connect()
    assert con.execute(f"SELECT len(regexp_extract_all(?, '{pattern}'))", [text]).fetchall() == [(4,)]
    replaced = v.placeholders_replaced_sql("?")
    assert con.execute(f"SELECT {replaced}", [text]).fetchall() == [("abcd<imagex><|image-pad|>",)]


def test_turn_tests_in_sql_sort_every_role():
    roles = ["human", "user", "gpt", "assistant", "system", "bot", None]
    got = duckdb.connect().execute(
        f"SELECT t.role, {v.human_turn_sql()}, {v.answer_turn_sql()} FROM (SELECT unnest(?) AS role) t",
        [roles]).fetchall()
    by_role = {r: (human, answer) for r, human, answer in got}
    assert by_role["human"] == by_role["user"] == (True, False)
    assert by_role["gpt"] == by_role["assistant"] == by_role["bot"] == (False, True)
    assert by_role["system"] == (False, False)


def test_user_and_assistant_turns_are_read_like_human_and_gpt(home, tmp_path):
    """Chat-style roles (user/assistant, with a system prompt) land with their question, answer and reasoning
    derived, as the checks have always read them; before, ingest recorded no question for them."""
    src = tmp_path / "src" / "si_distance"
    row = sft_row(0, "What is the distance between the chair and the table in meters?",
                  "<think>The chair is 1.8 m from the table.</think> 1.8")
    row["conversations"] = [{"from": "system", "value": "You are a spatial assistant."},
                            {"from": "user", "value": row["conversations"][0]["value"]},
                            {"from": "assistant", "value": row["conversations"][1]["value"]}]
    write_sft(src / "part-00000.parquet", [row])
    (src / "chat.json").write_text(json.dumps([{
        "id": "j-0", "conversations": [{"from": "user", "value": "How many chairs are there?"},
                                       {"from": "assistant", "value": "2"}]}]))
    summary = ingest([tmp_path / "src"], home, progress=False)
    assert (summary.rows_ok, summary.rows_failed) == (2, 0)
    with duckdb.connect(str(home.catalog_path), read_only=True) as con:
        got = con.execute("SELECT * FROM samples")
        names = [d[0] for d in got.description]
        rows = {r["source_id"]: r for r in (dict(zip(names, values)) for values in got.fetchall())}
    parquet_row, json_row = rows["id-0"], rows["j-0"]
    assert parquet_row["question"] == "What is the distance between the chair and the table in meters?"
    assert parquet_row["answer"] == "1.8" and parquet_row["answer_kind"] == "number"
    assert parquet_row["reasoning"] == "The chair is 1.8 m from the table." and parquet_row["has_reasoning"]
    assert (json_row["question"], json_row["answer"]) == ("How many chairs are there?", "2")
    # The checks see the same turns: one placeholder for one image, the think block well formed.
    out = run("format.placeholders", [sample("s", turns=parquet_row["turns"])])
    assert out["s"]["passed"]
    assert run("format.think_tags", [sample("s", turns=parquet_row["turns"])])["s"]["passed"]
