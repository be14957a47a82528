"""Contamination checks: training samples that share scenes, images or questions with evaluation benchmarks."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rapidfuzz import fuzz

from curation.checks.base import OUTCOME_SCHEMA, GlobalCheck, conform
from curation.checks.benchmarks import BenchItem, load_benchmarks
from curation.checks.embeddings import encode_unique, question_core
from curation.checks.registry import register

log = logging.getLogger(__name__)
NGRAM = 13  # word n-grams (practice: 13; 8 is the strict setting)
EMBED_THRESHOLD = 0.90
FUZZY_THRESHOLD = 95.0


def benchmark_items(gctx: Any) -> list[BenchItem]:
    """The run's benchmark items, read once and shared by the three checks."""
    if "benchmarks" not in gctx.cache:
        paths = [p for p in gctx.params.get("benchmarks") or [] if Path(p).exists()]
        gctx.cache["benchmarks"] = load_benchmarks(paths) if paths else []
        if not paths:
            log.warning("contamination checks: no benchmark files given (check --benchmarks PATH); nothing to compare")
    return gctx.cache["benchmarks"]


def _register(gctx: Any, name: str, table: pa.Table) -> None:
    gctx.catalog.register(name, table)


@register
class SceneOverlap(GlobalCheck):
    name = "contamination.scene"
    description = "The sample's scene (e.g. a ScanNet scene id) is a scene of a benchmark the user pointed to."
    applies_to = "samples with a scene id (when benchmark files are given)"
    columns = ("sample_id", "scene_id")
    score_meaning = "benchmark questions about the scene"

    def run_global(self, gctx: Any) -> Iterator[pa.Table]:
        items = [i for i in benchmark_items(gctx) if i.scene]
        if not benchmark_items(gctx):
            return
        per_scene: dict[str, list[BenchItem]] = defaultdict(list)
        for item in items:
            per_scene[item.scene].append(item)  # type: ignore[index]
        _register(gctx, "bench_scenes", pa.table({
            "scene": pa.array(list(per_scene), pa.string()),
            "benchmark": pa.array([v[0].benchmark for v in per_scene.values()], pa.string()),
            "file": pa.array([Path(v[0].file).name for v in per_scene.values()], pa.string()),
            "n": pa.array([len(v) for v in per_scene.values()], pa.int64()),
        }))
        sql = """
        SELECT s.sample_id, b.scene IS NULL AS passed, coalesce(b.n, 0)::DOUBLE AS score,
          CASE WHEN b.scene IS NOT NULL THEN format('scene_id: {} is a scene of {} ({}: {} question(s))',
                                                    s.scene_id, b.benchmark, b.file, b.n) END AS reason
        FROM samples s LEFT JOIN bench_scenes b ON b.scene = s.scene_id
        WHERE s.scene_id IS NOT NULL
        """
        for batch in gctx.catalog_batches(sql):
            yield conform(pa.Table.from_batches([batch]))


@register
class ImageOverlap(GlobalCheck):
    name = "contamination.image"
    description = ("A media item of the sample is a benchmark image: the same bytes (digest), or the same distinctive "
                   "file name (COCO-style ids).")
    applies_to = "samples with media (when benchmark files are given)"
    columns = ("sample_id", "media")
    score_meaning = "media items found in a benchmark"

    def run_global(self, gctx: Any) -> Iterator[pa.Table]:
        items = benchmark_items(gctx)
        if not items:
            return
        keys, kinds, benches = [], [], []
        for item in items:
            for d in item.image_digests:
                keys.append(d), kinds.append("digest"), benches.append(f"{item.benchmark} item {item.item_id}")
            for n in item.image_names:
                keys.append(n), kinds.append("name"), benches.append(f"{item.benchmark} item {item.item_id}")
        _register(gctx, "bench_images", pa.table({"key": pa.array(keys, pa.string()), "kind": kinds, "item": benches}))
        sql = """
        WITH m AS (
          SELECT sample_id, unnest(list_transform(media, lambda m, i: struct_pack(i := i - 1, d := m.digest,
                 n := lower(regexp_extract(coalesce(m.path, ''), '[^/]+$'))))) AS u
          FROM samples WHERE len(media) > 0
        ), hits AS (
          SELECT m.sample_id, u.i AS i, b.item, 'the same bytes' AS how FROM m JOIN bench_images b
            ON b.kind = 'digest' AND b.key = u.d
          UNION ALL
          SELECT m.sample_id, u.i, b.item, 'the same file name ' || u.n FROM m JOIN bench_images b
            ON b.kind = 'name' AND b.key = u.n
        ), agg AS (
          SELECT sample_id, count(DISTINCT i) AS n, arg_min(format('media[{}]: {} as {}', i, how, item), i) AS why
          FROM hits GROUP BY sample_id
        )
        SELECT s.sample_id, a.sample_id IS NULL AS passed, coalesce(a.n, 0)::DOUBLE AS score, a.why AS reason
        FROM samples s LEFT JOIN agg a USING (sample_id) WHERE len(s.media) > 0
        """
        for batch in gctx.catalog_batches(sql):
            yield conform(pa.Table.from_batches([batch]))


def _grams(words: list[str], n: int) -> set[int]:
    return {hash(" ".join(words[i : i + n])) for i in range(len(words) - n + 1)}


@register
class QuestionOverlap(GlobalCheck):
    name = "contamination.question"
    description = ("The question (boilerplate and options removed) matches a benchmark question by a shared word "
                   "13-gram (the whole question when shorter), fuzzy ratio >= 95 or embedding cosine >= 0.90; when "
                   "both sides name a scene it must be the same scene (templated questions recur across scenes).")
    applies_to = "all samples (when benchmark files are given)"
    columns = ("sample_id", "question", "scene_id")
    cost = "embedding"
    score_meaning = "best similarity to a benchmark question (1 for an n-gram hit)"
    _embedder: Any = None

    def run_global(self, gctx: Any) -> Iterator[pa.Table]:
        items = benchmark_items(gctx)
        if not items:
            return
        n = int(self.params.get("ngram", NGRAM))
        threshold = float(self.params.get("embed_threshold", EMBED_THRESHOLD))
        fuzzy = float(self.params.get("fuzzy_threshold", FUZZY_THRESHOLD))
        cores = [question_core(i.question) for i in items]
        grams: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))  # size -> hash -> items
        for k, core in enumerate(cores):
            words = core.split()
            if words:
                size = min(n, len(words))
                for h in _grams(words, size):
                    grams[size][h].append(k)
        index = None
        if self.params.get("contamination_embed", True) and cores:
            self._embedder = gctx.embedder()
            bench_vecs = encode_unique(self._embedder, cores)
            import faiss

            index = faiss.IndexFlatIP(bench_vecs.shape[1])
            index.add(np.ascontiguousarray(bench_vecs, dtype=np.float32))
        scenes = sorted({i.scene for i in items if i.scene})
        every_item_has_scene = all(i.scene for i in items)
        gctx.catalog.register("bench_scene_list", pa.table({"scene": pa.array(scenes, pa.string())}))
        # Rows on other scenes can only match items with no scene; when every item has one, skip them unread.
        examined = ("scene_id IS NULL OR scene_id IN (SELECT scene FROM bench_scene_list)"
                    if every_item_has_scene else "TRUE")
        sql = f"""
        SELECT sample_id, question, scene_id, ({examined}) AS examine FROM samples
        """
        for batch in gctx.catalog_batches(sql, batch_rows=50_000):
            yield self._batch(batch, items, cores, grams, index, threshold, fuzzy)
            gctx.alive()

    def _batch(self, batch: pa.RecordBatch, items: list[BenchItem], cores: list[str], grams, index,
               threshold: float, fuzzy: float) -> pa.Table:
        ids = batch.column("sample_id").to_pylist()
        questions = batch.column("question").to_pylist()
        scenes = batch.column("scene_id").to_pylist()
        examine = batch.column("examine").to_pylist()
        passed = [True] * len(ids)
        scores: list[float | None] = [None] * len(ids)
        reasons: list[str | None] = [None] * len(ids)
        todo = [i for i, e in enumerate(examine) if e]
        row_cores = {i: question_core(questions[i]) for i in todo}

        def allowed(i: int, k: int) -> bool:
            return items[k].scene is None or scenes[i] is None or items[k].scene == scenes[i]

        def flag(i: int, k: int, score: float, how: str) -> None:
            passed[i], scores[i] = False, score
            item = items[k]
            where = f", scene {item.scene}" if item.scene else ""
            reasons[i] = (f"question: matches {item.benchmark} item {item.item_id} ({Path(item.file).name}{where}) "
                          f"by {how}: {cores[k][:80]!r}")

        for i in todo:
            words = row_cores[i].split()
            for size, table in grams.items():
                if len(words) < size:
                    continue
                hit = next((k for h in _grams(words, size) for k in table.get(h, []) if allowed(i, k)), None)
                if hit is not None:
                    flag(i, hit, 1.0, f"a shared {size}-word sequence" if size == len(cores[hit].split()) and
                         size < NGRAM else f"a shared word {size}-gram")
                    break
        rest = [i for i in todo if passed[i] and row_cores[i]]
        if index is not None and rest:
            vecs = encode_unique(self._embedder, [row_cores[i] for i in rest])
            sims, nbrs = index.search(np.ascontiguousarray(vecs, dtype=np.float32), min(5, index.ntotal))
            for r, i in enumerate(rest):
                best = None
                for s, k in zip(sims[r], nbrs[r]):
                    if k < 0 or not allowed(i, int(k)):
                        continue
                    ratio = fuzz.ratio(row_cores[i], cores[k])
                    if ratio >= fuzzy:
                        best = (int(k), ratio / 100.0, f"fuzzy ratio {ratio:.0f}")
                        break
                    if s >= threshold:
                        best = (int(k), float(s), f"embedding cosine {s:.2f}")
                        break
                    scores[i] = max(scores[i] or 0.0, float(s))
                if best:
                    flag(i, *best)
        return pa.table([ids, passed, scores, reasons, pa.nulls(len(ids), pa.string())], schema=OUTCOME_SCHEMA)
