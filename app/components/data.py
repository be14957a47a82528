"""Connections (st.cache_resource) and cached results (st.cache_data) for the pages, all through curation/.

Results are cached per catalog version and text-index version; queries that read the curation state or check
results are not cached, because another curator or a check run can change them at any moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image

from curation.media.sample_media import MediaError, load_image, read_media_bytes, video_frame, video_info
from curation.media.scenes import MAX_BROWSER_POINTS, SampleScene, SceneCloud, load_scene_cloud, sample_scene
from curation.presenters.browse import thumbnail_url
from curation.presenters.sample import SampleGeometry, draw_overlays, sample_geometry, with_scene_objects
from curation.query.catalog import CatalogQuery, Order, Page
from curation.query.filters import FilterSpec
from curation.review.state_db import StateDB, open_state
from curation.settings import Settings, load_settings


class AppDataError(Exception):
    """Something the page shows as a message (no catalog yet, catalog busy, state database unreachable)."""


@dataclass(frozen=True)
class Backend:
    settings: Settings
    query: CatalogQuery
    state: StateDB

    @property
    def key(self) -> str:
        """What cached results depend on besides the filter: the catalog file and its text index."""
        return f"{self.settings.catalog_path}|{self.settings.text_index_dir}"


def settings() -> Settings:
    # Read each run (cheap): CURATOR_HOME and friends decide which catalog this server shows.
    return load_settings()


@st.cache_resource(show_spinner=False)
def _state(db_url: str) -> StateDB:
    return open_state(db_url)


def state_db() -> StateDB:
    """The state database of this server's data home (shared by every session), e.g. for sign-in's roles."""
    return _state(settings().db_url)


@st.cache_resource(show_spinner=False, max_entries=4)
def _query(settings_key: str, db_url: str, _settings: Settings) -> CatalogQuery:
    # Keyed by every setting (catalog, text index, results...). One per data home: it follows the catalog file when
    # an ingest swaps in a new one, and lets the old one go (a second CatalogQuery would keep the old file open).
    return CatalogQuery(_settings, state_db=_state(db_url))


def backend() -> Backend:
    """The catalog query layer and the state database, or AppDataError saying what to do."""
    s = settings()
    if not Path(s.catalog_path).exists():
        raise AppDataError(
            f"No catalog at `{s.catalog_path}`. Build one with `python -m curation demo` and "
            "`python -m curation ingest PATH...` (or `make run`), or point CURATOR_HOME at a data home."
        )
    try:
        state = _state(s.db_url)
        return Backend(s, _query(repr(s), s.db_url, s), state)
    except Exception as exc:  # a locked catalog, a bad database URL: shown on the page, never as a traceback
        raise AppDataError(f"Cannot open the data home `{s.home}`: {exc}") from exc


def _cacheable(spec: FilterSpec) -> bool:
    """Only pure catalog filters: state and check results change under us."""
    return not (spec.flagged is not None or spec.flag_reasons or spec.review or spec.reviewers
                or spec.failed_checks or spec.passed_checks or spec.score_below or spec.failed_severities
                or spec.difficulty or spec.pass_rate_above is not None or spec.pass_rate_below is not None)


def _version(b: Backend) -> str:
    """What cached results are valid for: the catalog's content and the text index's (a search made before the
    index was built must not stay empty once it is)."""
    return f"{b.query.version()}|{b.query.text_version()}"


@st.cache_data(show_spinner=False, max_entries=512)
def _facets_cached(key: str, version: str, spec_json: str, dims: tuple[str, ...] | None,
                   _q: CatalogQuery) -> dict[str, dict[str, int]]:
    return _q.facets(FilterSpec.model_validate_json(spec_json), list(dims) if dims else None)


@st.cache_data(show_spinner=False, max_entries=512)
def _count_cached(key: str, version: str, spec_json: str, _q: CatalogQuery) -> int:
    return _q.count(FilterSpec.model_validate_json(spec_json))


@st.cache_data(show_spinner=False, max_entries=512)
def _page_cached(key: str, version: str, spec_json: str, after: str | None, limit: int, order: Order,
                 columns: tuple[str, ...] | None, _q: CatalogQuery) -> Page:
    return _q.page(FilterSpec.model_validate_json(spec_json), after=after, limit=limit, order=order,
                   columns=list(columns) if columns else None)


def facets(b: Backend, spec: FilterSpec, dims: list[str] | None = None) -> dict[str, dict[str, int]]:
    if _cacheable(spec):
        return _facets_cached(b.key, _version(b), spec.model_dump_json(), tuple(dims) if dims else None, b.query)
    return b.query.facets(spec, dims)


def count(b: Backend, spec: FilterSpec) -> int:
    if _cacheable(spec):
        return _count_cached(b.key, _version(b), spec.model_dump_json(), b.query)
    return b.query.count(spec)


def page(b: Backend, spec: FilterSpec, after: str | None, limit: int = 50, order: Order = "catalog",
         columns: list[str] | None = None) -> Page:
    """A page of the matches (see CatalogQuery.page); its warnings are the text search's."""
    if _cacheable(spec):
        return _page_cached(b.key, _version(b), spec.model_dump_json(), after, limit, order,
                            tuple(columns) if columns else None, b.query)
    return b.query.page(spec, after=after, limit=limit, order=order, columns=columns)


@st.cache_data(show_spinner=False, max_entries=2048)
def _thumbnail(key: tuple, _row: dict) -> str | None:
    return thumbnail_url(_row, settings().media_roots)


def thumbnail(row: dict) -> str | None:
    """The row's first image as a small data URL, kept per media pointer (see browse.thumbnail_url)."""
    return _thumbnail(_media_key(row, 0), row)


# --- one sample's media, geometry and scene ----------------------------------------------------------------


def _media_key(row: dict, index: int) -> tuple:
    return (row["sample_id"], row.get("source_file"), row.get("row_group"), row.get("row_in_group"), index)


@st.cache_data(show_spinner=False, max_entries=256)
def _image(key: tuple, _row: dict, index: int) -> Image.Image:
    return load_image(_row, index, settings().media_roots)


def image(row: dict, index: int) -> Image.Image:
    """Decoded image ``index`` of a row; MediaError (shown as a message) when it cannot be had."""
    return _image(_media_key(row, index), row, index)


@st.cache_data(show_spinner=False, max_entries=128)
def _overlay(key: tuple, show_3d: bool, show_2d: bool, variant: str, _row: dict,
             _geometry: SampleGeometry) -> Image.Image:
    return draw_overlays(image(_row, key[-1]), _geometry, show_3d=show_3d, show_2d=show_2d)


def overlay(row: dict, index: int, geometry: SampleGeometry, show_3d: bool, show_2d: bool,
            variant: str = "") -> Image.Image:
    """Image ``index`` with ``geometry`` drawn in; ``variant`` names what else decides the drawing (a selected box)."""
    return _overlay(_media_key(row, index), show_3d, show_2d, variant, row, geometry)


@st.cache_data(show_spinner=False, max_entries=16)
def _video_bytes(key: tuple, _row: dict, index: int) -> bytes:
    return read_media_bytes(_row, index, settings().media_roots)


def video_bytes(row: dict, index: int) -> bytes:
    return _video_bytes(_media_key(row, index), row, index)


@st.cache_data(show_spinner=False, max_entries=16)
def _video_frames(key: tuple, _data: bytes) -> int:
    try:
        return video_info(_data).frames
    except Exception as exc:  # PyAV raises its own error types for broken containers
        raise MediaError(f"video does not decode: {exc}") from exc


def video_frames(row: dict, index: int) -> int:
    return _video_frames(_media_key(row, index), video_bytes(row, index))


@st.cache_data(show_spinner=False, max_entries=256)
def _video_frame(key: tuple, frame: int, _data: bytes) -> Image.Image:
    return video_frame(_data, frame)


def frame(row: dict, index: int, frame_index: int) -> Image.Image:
    """One decoded frame, on demand (the scrubber asks for one at a time)."""
    return _video_frame(_media_key(row, index), frame_index, video_bytes(row, index))


@st.cache_data(show_spinner=False, max_entries=64)
def _sample_cached(key: str, version: str, sample_id: str, _q: CatalogQuery) -> dict | None:
    return _q.sample(sample_id)


def sample(b: Backend, sample_id: str) -> dict | None:
    """A catalog row by id, kept per catalog version (the review queue reads the next sample ahead)."""
    return _sample_cached(b.key, b.query.version(), sample_id, b.query)


@st.cache_data(show_spinner=False, max_entries=256)
def _neighbours_cached(key: str, version: str, spec_json: str, sample_id: str,
                       _q: CatalogQuery) -> tuple[str | None, str | None]:
    return _q.neighbours(FilterSpec.model_validate_json(spec_json), sample_id)


def neighbours(b: Backend, spec: FilterSpec, sample_id: str) -> tuple[str | None, str | None]:
    """The review queue's previous and next sample under a filter (see CatalogQuery.neighbours)."""
    if _cacheable(spec):
        return _neighbours_cached(b.key, _version(b), spec.model_dump_json(), sample_id, b.query)
    return b.query.neighbours(spec, sample_id)


def scene_of(s: Settings, row: dict) -> SampleScene:
    """Where the sample sits in its scene (PLY, camera pose, objects); never raises."""
    return sample_scene(row, s.scene_root)


def geometry(row: dict, scene: SampleScene) -> SampleGeometry:
    """Boxes from the text, plus the scene's objects the question names (when the scene knows the camera)."""
    return with_scene_objects(sample_geometry(row), row.get("question") or "", scene.objects, scene.camera)


@st.cache_resource(show_spinner=False, max_entries=8)
def _scene(scene_root: str, scene_id: str, max_points: int, cache_dir: str, mtime_ns: int) -> SceneCloud:
    return load_scene_cloud(Path(scene_root), scene_id, max_points, Path(cache_dir))


def scene_cloud(s: Settings, scene_id: str, path: Path, max_points: int = MAX_BROWSER_POINTS) -> SceneCloud:
    """The downsampled cloud (kept in memory per file version, and on disk under the media cache)."""
    return _scene(str(s.scene_root), scene_id, max_points, str(s.media_cache_dir), path.stat().st_mtime_ns)
