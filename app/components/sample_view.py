"""The parts of the sample view: the conversation with its media placeholders, the reasoning trace, the images and
video with their boxes, and the 3D scene. Every failure is a message on the page."""

from __future__ import annotations

import streamlit as st

from app.components import data
from app.components.text import code, plain
from curation.media.sample_media import MediaError
from curation.media.scenes import MAX_BROWSER_POINTS, SampleScene, SceneError, cloud_in_camera_frame
from curation.presenters.checks import check_results_for
from curation.presenters.sample import SampleGeometry, TurnView, conversation_view, scene_figure
from curation.settings import Settings
from curation.vst.vocabulary import ASSISTANT_ROLES, HUMAN_ROLES

# Points sent to the browser by default: instant with a GPU, a few seconds where Chromium draws WebGL in software
# (~3 s per 40k points on 2 cores); the curator can ask for up to MAX_BROWSER_POINTS.
DEFAULT_SCENE_POINTS = 50_000
SCENE_POINT_CHOICES = [25_000, 50_000, 100_000, MAX_BROWSER_POINTS]
# st.chat_message avatars by turn role; the system prompt and any other role get the neutral one.
_ROLE = {**dict.fromkeys(HUMAN_ROLES, "user"), **dict.fromkeys(ASSISTANT_ROLES, "assistant")}


def _placeholder_badge(kind: str, ordinal: int, media_index: int | None) -> str:
    icon = ":material/image:" if kind == "image" else ":material/movie:"
    if media_index is None:
        return f":red-badge[{icon} {kind} {ordinal + 1} — no such media item]"
    return f":blue-badge[{icon} {kind} {ordinal + 1}]"


def conversation(row: dict) -> list[TurnView]:
    """All turns, media placeholders shown where they sit, reasoning set apart from the final answer."""
    turns = conversation_view(row)
    for t in turns:
        with st.chat_message(_ROLE.get(t.role, "ai")):
            st.caption(plain(t.role))
            if t.reasoning is not None:
                with st.container(border=True):
                    bad = "" if t.well_formed else "  :red-badge[malformed think tags]"
                    st.markdown("**Reasoning** `<think>`" + bad)
                    st.text(t.reasoning or "(empty)")
                st.markdown("**Final answer**")
            for seg in t.segments:
                if seg.kind == "text":
                    if seg.text:
                        st.text(seg.text)
                else:
                    st.markdown(_placeholder_badge(seg.kind, seg.ordinal, seg.media_index))
    return turns


def media(row: dict, geom: SampleGeometry) -> None:
    """Images as a strip (boxes drawn into the first), videos as a frame scrubber decoded on demand."""
    items = list(row.get("media") or [])
    if not items:
        st.caption("This sample has no media (a text sample).")
        return
    images = [i for i, m in enumerate(items) if (m.get("kind") or "image") == "image"]
    videos = [i for i, m in enumerate(items) if m.get("kind") == "video"]
    if images:
        _images(row, geom, items, images)
    for k, idx in enumerate(videos):
        _video(row, idx, k)
    for note in geom.notes:
        st.caption(f":material/info: {plain(note)}")


def _caption(items: list[dict], idx: int, k: int) -> str:
    m = items[idx]
    size = f" · {m['width']}×{m['height']}" if m.get("width") and m.get("height") else ""
    return f"image {k + 1}{size}"


def _images(row: dict, geom: SampleGeometry, items: list[dict], images: list[int]) -> None:
    """A strip of every image, then the chosen one large; boxes are drawn into image 1 (the answer's camera)."""
    drawable = bool(geom.boxes and geom.camera) or bool(geom.rects)
    if len(images) > 1:
        cols = st.columns(min(len(images), 6))
        for k, idx in enumerate(images):
            with cols[k % len(cols)]:
                try:
                    st.image(data.image(row, idx), caption=_caption(items, idx, k), width="stretch")
                except MediaError as exc:
                    st.warning(f"Image {k + 1} cannot be shown: {plain(exc)}")
        picked = st.segmented_control("Image shown large", list(range(1, len(images) + 1)), default=1,
                                      key="image_large", format_func=lambda n: f"image {n}") or 1
    else:
        picked = 1
    show_3d = show_2d = False
    if drawable:
        c1, c2 = st.columns(2)
        show_3d = c1.toggle("3D boxes", value=True, key="show_3d", disabled=not (geom.boxes and geom.camera))
        show_2d = c2.toggle("2D boxes", value=True, key="show_2d", disabled=not geom.rects)
    idx = images[picked - 1]
    try:
        if picked == 1 and drawable:
            st.image(data.overlay(row, idx, geom, show_3d, show_2d),
                     caption=_caption(items, idx, picked - 1) + " · boxes drawn in", width="stretch")
        else:
            st.image(data.image(row, idx), caption=_caption(items, idx, picked - 1), width="stretch")
    except MediaError as exc:
        st.warning(f"Image {picked} cannot be shown: {plain(exc)}")
    if geom.boxes and geom.camera:
        source = "the scene file states" if geom.camera_stated_as == "scene file" else "the prompt states"
        st.caption(f"3D boxes projected with the camera {source} ({plain(geom.camera_stated_as)}: "
                   f"fx={geom.camera.fx:.1f}, fy={geom.camera.fy:.1f}, cx={geom.camera.cx:.1f}, "
                   f"cy={geom.camera.cy:.1f}) into image 1; objects named in the question are outlined in "
                   "yellow (★).")


def _video(row: dict, idx: int, k: int) -> None:
    st.markdown(f"**Video {k + 1}** {code(row['media'][idx].get('path') or '(embedded)')}")
    try:
        n = data.video_frames(row, idx)
    except MediaError as exc:
        st.warning(f"Video {k + 1} cannot be shown: {plain(exc)}")
        return
    if n <= 0:
        st.warning(f"Video {k + 1} has no frames.")
        return
    i = st.slider("Frame", 0, n - 1, 0, key=f"frame_{idx}") if n > 1 else 0
    try:
        st.image(data.frame(row, idx, i), caption=f"frame {i + 1} of {n}", width="stretch")
    except MediaError as exc:
        st.warning(f"Frame {i} of video {k + 1} cannot be decoded: {plain(exc)}")


def scene(sc: SampleScene, geom: SampleGeometry, settings: Settings, row_media: list[dict]) -> None:
    """Plotly 3D view: camera frustum(s), 3D boxes with labels, and the scene cloud when the sample has one."""
    cloud = None
    if sc.problem:
        st.warning(plain(sc.problem[0].upper() + sc.problem[1:]) + ("; showing the boxes only." if geom.boxes else "."))
    if sc.ply is not None and sc.scene_id:
        budget = st.select_slider("Scene points in the browser", SCENE_POINT_CHOICES, value=DEFAULT_SCENE_POINTS,
                                  key="scene_points", format_func=lambda n: f"{n // 1000}k")
        try:
            with st.spinner(f"Loading scene {sc.scene_id}…"):
                cloud = data.scene_cloud(settings, sc.scene_id, sc.ply, budget)
        except (SceneError, OSError) as exc:
            st.warning(f"Scene {code(sc.scene_id)} cannot be shown: {plain(exc)}")
    if cloud is None and not geom.boxes:
        st.caption("No 3D content: the sample has no 3D boxes and no scene point cloud.")
        return
    if cloud is not None:
        shown = f"{cloud.n_points:,} of {cloud.source_points:,} points"
        if cloud.voxel_size:
            shown += f" (open3d voxel {cloud.voxel_size * 100:.1f} cm)"
        if sc.pose is not None and sc.camera_name:
            cloud = cloud_in_camera_frame(cloud, sc.pose, sc.camera_name)
            st.caption(f"Scene {code(cloud.scene_id)}: {shown}, in the frame of camera {plain(sc.camera_name)}.")
        else:
            st.caption(f"Scene {code(cloud.scene_id)}: {shown}. The scene file has no pose for this sample's camera, "
                       "so the cloud is drawn in its own frame, not aligned with the boxes.")
    if any(b.source == "scene" for b in geom.boxes):
        st.caption("Dashed boxes: objects the question names, placed from the scene's annotations.")
    frame = None
    if sc.trajectory:
        video = next((i for i, m in enumerate(row_media) if m.get("kind") == "video"), None)
        frame = st.session_state.get(f"frame_{video}", 0) if video is not None else None
        st.caption("Orange: the video's camera path through the scene, and the camera of the frame shown above.")
    fig = scene_figure(geom, cloud, sc.other_cameras, trajectory=sc.trajectory, frame=frame)
    st.plotly_chart(fig, key="scene3d", config={"displaylogo": False}, width="stretch")


def checks(settings: Settings, sample_id: str) -> None:
    """The latest outcome of every check on this sample, failing ones first, in one collapsed line when all pass."""
    try:
        results = check_results_for(settings, sample_id)
    except Exception as exc:  # unreadable result files must not hide the sample
        st.warning(f"Check results cannot be read: {plain(exc)}")
        return
    if not results:
        st.caption(":material/rule: No check has looked at this sample yet (run checks on the Checks page).")
        return
    failed = [r for r in results if not r["passed"]]
    label = (f":red[:material/error:] Checks: {len(failed)} of {len(results)} failed" if failed
             else f":green[:material/check_circle:] Checks: all {len(results)} passed")
    with st.expander(label, expanded=bool(failed)):
        st.dataframe(
            [{"ok": "✓" if r["passed"] else "✗", "check": r["check"], "score": r["score"], "reason": r["reason"]}
             for r in results],
            hide_index=True, key="sample_checks", height=38 + 35 * min(len(results), 8),
            column_config={"ok": st.column_config.TextColumn(width="small"),
                           "reason": st.column_config.TextColumn(width="large")},
        )
