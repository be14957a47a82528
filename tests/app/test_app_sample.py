"""The sample view and review queue: a curator opens a sample, sees its turns, reasoning, images with boxes and
its 3D scene, reviews it as the signed-in person (here the single user of a local server), and steps through the
filter; broken media and scenes are messages."""

from __future__ import annotations

import json

import pytest

from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.actors import local_actor
from curation.review.flags import flags_for
from curation.review.reviews import review_for
from db.engine import open_state
from tests.app.test_app_support import app_at, broken_app_home, shown, texts
from tests.support.exports_fixtures import write_results

SAMPLE = "pages/2_Sample.py"
WHO = local_actor().who  # AppTest runs the app single-user: no sign-in, the machine's user acts (as admin)


def first_of(catalog: CatalogQuery, **spec) -> str:
    return catalog.page(FilterSpec(**spec), limit=1).rows[0]["sample_id"]


def plotly_names(at) -> list[str]:
    import json

    chart = next(c for c in at.get("plotly_chart") if c.key == "scene3d")
    return [t.get("name") for t in json.loads(chart.proto.spec)["data"]]


def test_a_detection_sample_shows_boxes_in_its_image_and_its_scene_in_3d(settings, catalog):
    sid = first_of(catalog, skills=["si_3d_detection"])
    at = app_at(SAMPLE, id=sid)
    assert not at.exception and not at.error
    assert shown(at, "title") == [f"Sample {sid}"]
    images = at.get("image")
    assert images and "boxes drawn in" in images[0].proto.imgs[0].caption
    assert any("projected with the camera the prompt states" in c for c in shown(at, "caption"))
    names = plotly_names(at)  # the boxes at once; the scene's cloud when asked for (it costs the browser seconds)
    assert names[0] == "camera" and not any((n or "").startswith("scene room_") for n in names)
    assert any("has a point cloud: turn on" in c for c in shown(at, "caption"))
    at.toggle(key="scene_cloud_on").set_value(True).run()
    names = plotly_names(at)
    assert names[0] == "camera" and any((n or "").startswith("scene room_") for n in names)
    assert any("in the frame of camera cam_" in c for c in shown(at, "caption"))
    assert any(":blue-badge[:material/image: image 1]" in m for m in shown(at, "markdown"))


def test_a_reasoning_sample_sets_its_trace_apart_and_outlines_the_objects_it_asks_about(settings, catalog):
    sid = first_of(catalog, skills=["cot_sr_si"])
    at = app_at(SAMPLE, id=sid)
    assert not at.exception
    assert any(m.startswith("**Reasoning** `<think>`") for m in shown(at, "markdown"))
    assert "**Final answer**" in shown(at, "markdown")
    trace = shown(at, "text")
    assert any("So the answer is" in t for t in trace)
    row = catalog.sample(sid)
    if "closer" in (row["question"] or ""):  # depth questions name two objects: the scene places both
        assert any(n.startswith("★") and n.endswith("(scene)") for n in plotly_names(at))


def test_no_name_is_typed_and_every_action_carries_the_signed_in_persons_name(settings, catalog):
    sid = first_of(catalog, skills=["si_distance"])
    at = app_at(SAMPLE, id=sid)
    assert not at.button(key="btn_flag").disabled and not at.button(key="btn_approve").disabled
    assert f"Single-user mode, no sign-in: acting as {local_actor().name}" in shown(at.sidebar, "caption")
    assert not any(b.label == "Start reviewing" for b in at.button)  # no name to type

    at.selectbox(key="flag_reason").select("unit_error")
    at.text_input(key="flag_note").input("answer in cm, question asks meters")
    at.button(key="btn_flag").click().run()
    with open_state(settings.db_url) as db:
        (flag,) = flags_for(db, sid)
    assert (flag.reason, flag.note, flag.who) == ("unit_error", "answer in cm, question asks meters", WHO)
    assert any(f"**unit_error** by {WHO}" in m for m in shown(at, "markdown"))

    at.button(key="btn_undo").click().run()
    with open_state(settings.db_url) as db:
        assert flags_for(db, sid) == []
    assert any("Undid your last flag" in s for s in shown(at, "success"))

    at.button(key="btn_flag").click().run()  # flag again (the reason is still selected), then remove it
    with open_state(settings.db_url) as db:
        (again,) = flags_for(db, sid)
    assert again.note is None  # the note box was emptied after the first flag
    at.button(key=f"btn_unflag_{again.id}").click().run()
    with open_state(settings.db_url) as db:
        assert flags_for(db, sid) == [] and flags_for(db, sid, include_removed=True)[-1].removed_by == WHO


def test_approving_moves_the_queue_to_the_next_sample_of_the_filter(settings, catalog):
    spec = FilterSpec(skills=["si_measurement"])
    first, second, third = [r["sample_id"] for r in catalog.page(spec, limit=3).rows]
    at = app_at(SAMPLE, id=first, skills="si_measurement")
    assert at.button(key="btn_prev").disabled
    at.button(key="btn_approve").click().run()
    assert at.query_params == {"skills": "si_measurement", "id": second}
    assert shown(at, "title") == [f"Sample {second}"]

    at.toggle(key="auto_advance").set_value(False).run()
    at.button(key="btn_reject").click().run()
    assert at.query_params["id"] == second
    at.button(key="btn_next").click().run()
    assert at.query_params["id"] == third
    at.button(key="btn_prev").click().run()
    assert at.query_params["id"] == second
    with open_state(settings.db_url) as db:
        assert review_for(db, first).verdict == "approve"
        assert (review_for(db, second).verdict, review_for(db, second).reviewer) == ("reject", WHO)


def test_fixing_the_answer_keeps_the_original_in_the_catalog(settings, catalog):
    sid = first_of(catalog, skills=["si_distance"])
    original = catalog.sample(sid)["answer"]
    at = app_at(SAMPLE, id=sid)
    at.text_area[0].input("2.4")
    next(b for b in at.button if b.label == "Save fix").click().run()
    with open_state(settings.db_url) as db:
        state = review_for(db, sid)
    assert (state.verdict, state.fixed_answer, state.fixed_reasoning) == ("fix", "2.4", None)
    assert catalog.sample(sid)["answer"] == original
    assert any(f":blue-badge[fixed] by {WHO}" in m for m in shown(at, "markdown"))


def test_a_video_is_scrubbed_one_decoded_frame_at_a_time(settings, catalog):
    sid = first_of(catalog, groups=["video"])
    at = app_at(SAMPLE, id=sid)
    assert not at.exception
    slider = at.slider(key=next(s.key for s in at.slider if s.key.startswith("frame_")))
    last = int(slider.max)
    assert last >= 1
    slider.set_value(last).run()
    assert any(f"frame {last + 1} of {last + 1}" in im.proto.imgs[0].caption for im in at.get("image"))
    names = plotly_names(at)  # the 3D view follows: the camera path, and this frame's camera on it
    assert "video camera path" in names and f"frame {last + 1}" in names


def test_unknown_ids_missing_media_and_broken_scenes_are_messages_not_tracebacks(monkeypatch, tmp_path):
    settings = broken_app_home(monkeypatch, tmp_path)
    at = app_at(SAMPLE, id="no-such-sample")
    assert not at.exception
    assert any("There is no sample `no-such-sample`" in e for e in shown(at, "error"))

    at = app_at(SAMPLE, id="v-1")  # its mp4 was never there; its scene room_0002 has no cloud
    assert not at.exception
    warnings = " ".join(shown(at, "warning"))
    assert "Video 1 cannot be shown" in warnings and "room_0002_path0.mp4" in warnings
    assert "Scene room_0002 has no point cloud" in warnings

    at = app_at(SAMPLE, id="v-0")  # a file that is not a video; scene room_0001's PLY is garbage
    at.toggle(key="scene_cloud_on").set_value(True).run()
    warnings = " ".join(shown(at, "warning"))
    assert "Video 1 cannot be shown" in warnings and "Scene `room_0001` cannot be shown" in warnings

    shard = tmp_path / "src/vst_p/si_distance/part-00000.parquet"
    shard.write_bytes(b"overwritten by a failed copy")  # the shard became unreadable after ingest
    at = app_at(SAMPLE, id="id-2")
    assert not at.exception
    assert any("Image 1 cannot be shown" in w and "part-00000.parquet" in w for w in shown(at, "warning"))
    shard.unlink()  # and then it is gone
    at = app_at(SAMPLE, id="id-3")
    assert any("is gone" in w for w in shown(at, "warning"))
    assert settings.catalog_path.exists()


def test_without_an_id_the_page_asks_for_one(settings, catalog):
    at = app_at(SAMPLE)
    assert not at.exception
    assert any("No sample chosen" in i for i in shown(at, "info"))
    sid = first_of(catalog)
    at.text_input(key="sample_id_input").input(sid).run()
    assert shown(at, "title") == [f"Sample {sid}"]


def image_captions(at) -> list[str]:
    return [img.caption for im in at.get("image") for img in im.proto.imgs]


def test_a_box_the_question_places_in_the_second_image_is_drawn_there(settings, catalog):
    # "The first image shows a chair (bbox [...]) and the second image a trash can (bbox [...])": one box each.
    sid = first_of(catalog, skills=["mi_object_object_relation"])
    assert "the second image" in catalog.sample(sid)["question"]
    at = app_at(SAMPLE, id=sid)
    assert not at.exception
    strip = image_captions(at)[:2]
    assert strip[0].startswith("image 1") and "drawn in" in strip[0]  # the chair (and the scene's named objects)
    assert strip[1].startswith("image 2") and strip[1].endswith("· 1 box drawn in")  # the trash can


def test_multi_image_detection_boxes_stay_in_the_first_camera_and_the_table_lists_them(settings, catalog):
    sid = first_of(catalog, skills=["mi_3d_detection"])
    row = catalog.sample(sid)
    at = app_at(SAMPLE, id=sid)
    assert not at.exception
    n = len(row["boxes_3d"])
    captions = image_captions(at)
    assert captions[0].endswith(f"· {n} boxes drawn in") and "drawn in" not in captions[1]
    table = next(d for d in at.dataframe if "image" in d.value.columns)
    assert table.value["label"].tolist() == [b["label"] for b in row["boxes_3d"]]
    assert table.value["yaw (°)"].tolist() == pytest.approx([b["bbox"][7] * 180 for b in row["boxes_3d"]])
    assert set(table.value["image"]) == {"image 1"}


def test_saving_the_box_editor_unchanged_writes_the_answer_json_the_format_uses(settings, catalog):
    sid = first_of(catalog, skills=["si_3d_detection"])
    row = catalog.sample(sid)
    at = app_at(SAMPLE, id=sid)
    next(b for b in at.button if b.label == "Save box fix").click().run()
    with open_state(settings.db_url) as db:
        state = review_for(db, sid)
    assert state.verdict == "fix" and state.fixed_answer.startswith("```json\n")
    saved = json.loads(state.fixed_answer.strip("`").removeprefix("json"))
    assert [(b["label"], b["bbox_3d"]) for b in saved] == [
        (b["label"], pytest.approx(b["bbox"], abs=1e-6)) for b in row["boxes_3d"]]


def test_the_words_the_search_found_are_marked_in_the_turns_as_text(settings, catalog):
    spec = FilterSpec(text="chairs")
    sid = catalog.page(spec, limit=1).rows[0]["sample_id"]
    at = app_at(SAMPLE, id=sid, text="chairs")
    assert not at.exception
    marked = [m for m in texts(at, "markdown") if ":orange-background[" in m]
    assert marked and any(":orange-background[**chair" in m.lower() or ":orange-background[**chair" in m
                          for m in marked)


def test_failed_checks_show_their_severity(settings, catalog):
    sid = first_of(catalog, skills=["si_distance"])
    write_results(settings, "format.placeholders", {sid: (False, "2 placeholders, 1 image")}, severity="error")
    write_results(settings, "consistency.reasoning", {sid: (False, "conclusion differs")}, run_id="run-0002",
                  severity="warning")
    at = app_at(SAMPLE, id=sid)
    assert not at.exception
    assert any("2 of 2 failed (1 error, 1 warning)" in e.label for e in at.expander)
    table = next(d for d in at.dataframe if "severity" in d.value.columns)
    assert dict(zip(table.value["check"], table.value["severity"], strict=True)) == {
        "format.placeholders": "error", "consistency.reasoning": "warning"}


def test_after_approve_and_next_the_message_names_the_sample_it_was_about(settings, catalog):
    spec = FilterSpec(skills=["si_measurement"])
    first, second = [r["sample_id"] for r in catalog.page(spec, limit=2).rows]
    at = app_at(SAMPLE, id=first, skills="si_measurement")
    at.button(key="btn_approve").click().run()
    assert shown(at, "title") == [f"Sample {second}"]
    assert shown(at, "success") == [f"Approved sample {first}. Now showing the next sample of the queue, {second}."]
    assert any("Not reviewed yet." in c for c in shown(at, "caption"))
