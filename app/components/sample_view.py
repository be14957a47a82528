"""The parts of the sample view: the conversation with its media placeholders and search hits, the reasoning trace,
the images and video with their boxes, the box table, and the 3D scene. Every failure is a message on the page."""

from __future__ import annotations

import streamlit as st

from app.components import data
from app.components.text import code, plain
from curation.media.sample_media import MediaError
from curation.media.scenes import MAX_BROWSER_POINTS, SampleScene, SceneError, cloud_in_camera_frame
from curation.presenters.checks import SEVERITY_MEANING, check_results_for
from curation.presenters.sample import (
    SampleGeometry,
    TurnView,
    box_table,
    boxes_per_image,
    conversation_view,
    on_image,
    scene_figure,
    search_hits,
    select_box,
)
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


def _text(text: str, query: str) -> None:
    """A piece of a turn as written; the search's hits marked (escaped first, then marked: nothing from the data
    becomes Markdown)."""
    hits = search_hits(text, query) if query else []
    if not hits:
        st.text(text)
        return
    parts, pos = [], 0
    for a, b in hits:
        parts.append(plain(text[pos:a]) + f":orange-background[**{plain(text[a:b])}**]")
        pos = b
    parts.append(plain(text[pos:]))
    st.markdown("".join(parts).replace("\n", "  \n"))


def conversation(row: dict, query: str = "") -> list[TurnView]:
    """All turns, media placeholders shown where they sit, reasoning set apart from the final answer; the words
    the filter's text search matches are marked."""
    turns = conversation_view(row)
    for t in turns:
        with st.chat_message(_ROLE.get(t.role, "ai")):
            st.caption(plain(t.role))
            if t.reasoning is not None:
                with st.container(border=True):
                    bad = "" if t.well_formed else "  :red-badge[malformed think tags]"
                    st.markdown("**Reasoning** `<think>`" + bad)
                    _text(t.reasoning or "(empty)", query)
                st.markdown("**Final answer**")
            for seg in t.segments:
                if seg.kind == "text":
                    if seg.text:
                        _text(seg.text, query)
                else:
                    st.markdown(_placeholder_badge(seg.kind, seg.ordinal, seg.media_index))
    return turns


def media(row: dict, geom: SampleGeometry) -> None:
    """Images as a strip (each with the boxes stated in it), videos as a frame scrubber decoded on demand."""
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


def _caption(items: list[dict], idx: int, k: int, boxes: int = 0) -> str:
    m = items[idx]
    size = f" · {m['width']}×{m['height']}" if m.get("width") and m.get("height") else ""
    drawn = f" · {boxes} {'box' if boxes == 1 else 'boxes'} drawn in" if boxes else ""
    return f"image {k + 1}{size}{drawn}"


def _drawn(view: SampleGeometry, show_3d: bool, show_2d: bool) -> int:
    """How many boxes an image's view gets drawn in (3D ones need the stated camera)."""
    return len(view.rects) * show_2d + len(view.boxes) * bool(show_3d and view.camera)


def _shown(row: dict, idx: int, geom: SampleGeometry, boxes: int, show_3d: bool, show_2d: bool):
    """The image, with the boxes stated in it drawn in when it has any."""
    if not boxes or not (show_3d or show_2d):
        return data.image(row, idx)
    selected = next((str(i) for i, b in enumerate(geom.boxes) if b.selected), "")
    return data.overlay(row, idx, geom, show_3d, show_2d, variant=selected)


def _images(row: dict, geom: SampleGeometry, items: list[dict], images: list[int]) -> None:
    """A strip of every image, then the chosen one large; each box is drawn into the image the text places it in."""
    per_image = boxes_per_image(geom) + [0] * len(images)
    drawable = bool(geom.boxes and geom.camera) or bool(geom.rects)
    show_3d = show_2d = False
    if drawable:
        c1, c2 = st.columns(2)
        show_3d = c1.toggle("3D boxes", value=True, key="show_3d", disabled=not (geom.boxes and geom.camera))
        show_2d = c2.toggle("2D boxes", value=True, key="show_2d", disabled=not geom.rects)
    views = [on_image(geom, k) for k in range(len(images))]
    counts = [_drawn(v, show_3d, show_2d) for v in views]
    if len(images) > 1:
        cols = st.columns(min(len(images), 6))
        for k, idx in enumerate(images):
            with cols[k % len(cols)]:
                try:
                    st.image(_shown(row, idx, views[k], counts[k], show_3d, show_2d),
                             caption=_caption(items, idx, k, counts[k]), width="stretch")
                except MediaError as exc:
                    st.warning(f"Image {k + 1} cannot be shown: {plain(exc)}")
        picked = st.segmented_control("Image shown large", list(range(1, len(images) + 1)), default=1,
                                      key="image_large", format_func=lambda n: f"image {n} ({per_image[n - 1]})"
                                      if per_image[n - 1] else f"image {n}") or 1
    else:
        picked = 1
    idx = images[picked - 1]
    try:
        st.image(_shown(row, idx, views[picked - 1], counts[picked - 1], show_3d, show_2d),
                 caption=_caption(items, idx, picked - 1, counts[picked - 1]), width="stretch")
    except MediaError as exc:
        st.warning(f"Image {picked} cannot be shown: {plain(exc)}")
    if geom.boxes and geom.camera:
        source = "the scene file states" if geom.camera_stated_as == "scene file" else "the prompt states"
        where = "into image 1" if len(images) <= 1 else "into the image whose camera frame each box is stated in"
        st.caption(f"3D boxes projected with the camera {source} ({plain(geom.camera_stated_as)}: "
                   f"fx={geom.camera.fx:.1f}, fy={geom.camera.fy:.1f}, cx={geom.camera.cx:.1f}, "
                   f"cy={geom.camera.cy:.1f}) {where}; objects named in the question are outlined in yellow (★).")


def selected_box(geom: SampleGeometry, sample_id: str) -> SampleGeometry:
    """The geometry with the box picked in this sample's box table (if any) marked selected."""
    state = st.session_state.get(f"box_table_{sample_id}")
    rows = list(getattr(getattr(state, "selection", None), "rows", None) or []) if state is not None else []
    return select_box(geom, rows[0] if rows else None)


def boxes(geom: SampleGeometry, sample_id: str) -> None:
    """The 3D boxes as a table in metres and degrees; picking a row highlights that box in the image and in 3D."""
    rows = box_table(geom)
    if not rows:
        return
    number = st.column_config.NumberColumn
    st.dataframe(
        rows, hide_index=True, key=f"box_table_{sample_id}", on_select="rerun", selection_mode="single-row",
        column_config={
            "label": st.column_config.TextColumn("label"),
            **{c: number(c, format="%.2f") for c in ("x (m)", "y (m)", "z (m)", "x size (m)", "y size (m)",
                                                      "z size (m)")},
            **{c: number(c, format="%.1f") for c in ("pitch (°)", "yaw (°)", "roll (°)")},
        },
    )
    st.caption("Centre (x right, y down, z forward) and sizes in metres in the camera frame of the image named; "
               "angles in degrees (VST writes them divided by 180). Pick a row to highlight its box.")


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


@st.fragment
def scene(sc: SampleScene, geom: SampleGeometry, settings: Settings, row_media: list[dict]) -> None:
    """Plotly 3D view: camera frustum(s) and 3D boxes with labels at once; the scene's point cloud when the curator
    asks for it (a fragment: turning it on redraws this view only, and a review step never waits for it)."""
    cloud, want = None, False
    if sc.problem:
        st.warning(plain(sc.problem[0].upper() + sc.problem[1:]) + ("; showing the boxes only." if geom.boxes else "."))
    if sc.ply is not None and sc.scene_id:
        c1, c2 = st.columns([1, 2], vertical_alignment="center")
        # Off by default: drawing a cloud takes the browser seconds without a GPU, and the review step must not wait.
        # The choice holds for the next samples of this session.
        want = c1.toggle("Scene point cloud", key="scene_cloud_on",
                         help="Draw the scene's points around the boxes; stays on for the next samples")
        budget = c2.select_slider("Scene points in the browser", SCENE_POINT_CHOICES, value=DEFAULT_SCENE_POINTS,
                                  key="scene_points", format_func=lambda n: f"{n // 1000}k", disabled=not want)
        if not want:
            st.caption(f"Scene {code(sc.scene_id)} has a point cloud: turn on *Scene point cloud* to draw it.")
    if want:
        try:
            with st.spinner(f"Loading scene {sc.scene_id}…"):
                cloud = data.scene_cloud(settings, sc.scene_id, sc.ply, budget)
        except (SceneError, OSError) as exc:
            st.warning(f"Scene {code(sc.scene_id)} cannot be shown: {plain(exc)}")
    if cloud is None and not (geom.boxes or sc.other_cameras or sc.trajectory):
        if sc.ply is None or want:
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
    worst = {s: sum(1 for r in failed if r["severity"] == s) for s in SEVERITY_MEANING}
    by_severity = ", ".join(f"{n} {s}{'s' if n > 1 else ''}" for s, n in worst.items() if n)
    by_severity = f" ({by_severity})" if by_severity else ""  # results written before failures had a severity
    label = (f":red[:material/error:] Checks: {len(failed)} of {len(results)} failed{by_severity}" if failed
             else f":green[:material/check_circle:] Checks: all {len(results)} passed")
    with st.expander(label, expanded=bool(failed)):
        st.dataframe(
            [{"ok": "✓" if r["passed"] else "✗", "severity": "" if r["passed"] else (r["severity"] or "?"),
              "check": r["check"], "score": r["score"], "reason": r["reason"]} for r in results],
            hide_index=True, key="sample_checks", height=38 + 35 * min(len(results), 8),
            column_config={"ok": st.column_config.TextColumn(width="small"),
                           "severity": st.column_config.TextColumn(
                               width="small", help="; ".join(f"{k}: {v}" for k, v in SEVERITY_MEANING.items())),
                           "reason": st.column_config.TextColumn(width="large")},
        )


def read_ahead(b: data.Backend, spec, sample_id: str) -> None:
    """Read the next sample of the queue into the caches while the curator looks at this one: its row, its queue
    steps and its images as media() will draw them, so the review step only renders."""
    try:
        row = data.sample(b, sample_id)
        if row is None:
            return
        data.neighbours(b, spec, sample_id)
        geom = data.geometry(row, data.scene_of(b.settings, row))
        show_3d, show_2d = st.session_state.get("show_3d", True), st.session_state.get("show_2d", True)
        images = [i for i, m in enumerate(row.get("media") or []) if (m.get("kind") or "image") == "image"]
        for k, idx in enumerate(images[:6]):
            view = on_image(geom, k)
            _shown(row, idx, view, _drawn(view, show_3d, show_2d), show_3d, show_2d)
    except Exception:  # reading ahead is a courtesy: the next page shows any problem itself
        return
