"""Media checks: one finds tiny or elongated images, RL rows over the token budget, broken images, lost videos."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from curation.checks.media import image_tokens, tokens_sql
from curation.ingest.run import ingest
from tests.support.checks_helpers import image, run, sample, video
from tests.support.shards import png, sft_row, write_rl, write_sft


def test_small_and_elongated_images_fail_with_their_size():
    out_side = run("media.min_side", [sample("ok"), sample("tiny", media=[image(), image(20, 15)])])
    assert out_side["ok"]["passed"] and out_side["ok"]["score"] == 300
    assert out_side["tiny"]["reason"] == "media[1]: image is 20x15 px; its shorter side is below 28 px"
    out_aspect = run("media.aspect_ratio", [sample("ok"), sample("strip", media=[image(1000, 8)])])
    assert out_aspect["ok"]["passed"] and out_aspect["strip"]["score"] == 125.0
    assert "aspect ratio 125.0:1 exceeds 100:1" in out_aspect["strip"]["reason"]


@pytest.mark.parametrize("w, h", [(400, 300), (2100, 1575), (20, 15), (1000, 8), (6000, 4000), (28, 28), (57, 99)])
def test_token_count_in_sql_matches_qwen_smart_resize(w, h):
    import duckdb

    assert duckdb.connect().sql(f"SELECT {tokens_sql(str(w), str(h))}").fetchall()[0][0] == image_tokens(w, h)


def test_rl_rows_over_the_image_token_budget_fail():
    big = image(2100, 1575)
    out = run("media.token_budget", [
        sample("fits", kind="rl", media=[image(), image()]),
        sample("too-big", kind="rl", media=[big, big, big]),
        sample("too-many", kind="rl", media=[image(64, 64)] * 5),
        sample("sft", media=[big, big, big]),
    ])
    assert out["fits"]["passed"] and "sft" not in out
    assert out["too-big"]["score"] == 3 * image_tokens(2100, 1575) > 8192
    assert "the RL budget is below 8192" in out["too-big"]["reason"]
    assert "RL rows take at most 4" in out["too-many"]["reason"]


def test_broken_images_and_missing_videos_are_found_in_the_real_shards(home, tmp_path):
    """Given a shard with a truncated JPEG and a video list with a missing file, the media checks read the bytes."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(buf, format="JPEG")
    jpeg = buf.getvalue()
    rows = [sft_row(0, "What is the distance between the chair and the table in meters?", "1.8"),
            sft_row(1, "What is the distance between the sofa and the lamp in meters?", "2.5",
                    images=[{"bytes": jpeg[: len(jpeg) // 3], "path": "cut.jpg"}]),
            sft_row(2, "How far?", "3", images=[{"bytes": b"\x00not an image", "path": "x.png"}])]
    write_sft(tmp_path / "src/si_distance/part-00000.parquet", rows)
    vdir = tmp_path / "src/video"
    vdir.mkdir(parents=True)
    (vdir / "video_train.json").write_text(json.dumps([
        {"id": "v0", "conversations": [{"from": "human", "value": "<|video_pad|>How many chairs?"},
                                       {"from": "gpt", "value": "2"}], "video": "videos/gone.mp4", "type": "video"}]))
    ingest([tmp_path / "src"], home, progress=False)
    from curation.query.catalog import CatalogQuery
    from curation.query.filters import FilterSpec

    q = CatalogQuery(home)
    all_rows = q.page(FilterSpec(), limit=10, columns=["sample_id", "source_id", "media", "n_images", "n_videos",
                                                       "source_file", "row_group", "row_in_group"]).rows
    q.close()
    by_source = {r["source_id"]: r["sample_id"] for r in all_rows}
    decoded = run("media.decodable", all_rows)
    assert decoded[by_source["id-0"]]["passed"]
    assert "does not decode" in decoded[by_source["id-1"]]["reason"]
    assert not decoded[by_source["id-2"]]["passed"]
    # No buffer address (<_io.BytesIO object at 0x7f...>): the same failure reads the same on every run.
    assert "0x" not in decoded[by_source["id-2"]]["reason"]
    videos = run("media.video", all_rows)
    lost = videos[by_source["v0"]]["reason"]
    assert "video file is missing" in lost and "gone.mp4" in lost


def test_a_real_video_decodes(tmp_path):
    import av
    import numpy as np

    path = tmp_path / "v.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 30, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    row = sample("v", media=[video("v.mp4")], source_file=str(tmp_path / "list.json"))
    out = run("media.video", [row])["v"]
    assert out["passed"] and out["score"] >= 1


def test_rl_shard_images_decode(home, tmp_path):
    write_rl(tmp_path / "rl/rl_gr_math/part-00000.parquet", [
        {"id": "r0", "images": [{"bytes": png(), "path": ""}], "question": "2+3?", "answer": "5",
         "meta_info": json.dumps({"mode": ["math_score"]})}])
    ingest([tmp_path / "rl"], home, progress=False)
    from curation.query.catalog import CatalogQuery
    from curation.query.filters import FilterSpec

    q = CatalogQuery(home)
    rows = q.page(FilterSpec(), columns=["sample_id", "media", "n_images", "source_file", "row_group",
                                         "row_in_group"]).rows
    q.close()
    assert all(o["passed"] for o in run("media.decodable", rows).values())
