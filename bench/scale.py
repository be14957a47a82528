"""Scale benchmark for the foundation: text-only VST-shaped shards at full size (4.1M rows by default).

    python -m bench.scale --samples 4100000 [--rows-per-shard 100000] [--random-ids] [--out bench/out/scale] [--keep]

Prints ingest time next to two bare DuckDB imports from the same files, facet, page (first and ~4M deep) and
text-search latencies (median of repeated runs), peak RSS of each phase (each phase runs in its own process), and
ends with one JSON line of the figures. ``--random-ids`` gives the rows random UUIDs, as real VST shards have (the
generator's ids otherwise sort in the order they are written). Text search is timed for a selective query and for
broad ones (each query's share of the rows is printed): its count, its first and a middle page, the first count and
facets under it with another filter (which collect every hit), and the first page by relevance; each as a new search
on a query layer already open, as in the app (results are kept per query). The two imports:

- ``duckdb_import_s``: CREATE TABLE AS SELECT of the shards' raw columns, as they are in the files;
- ``catalog_import_s``: the catalog's columns, i.e. the canonical SELECT ingest runs (skill, question/answer/
  reasoning split, answer kind, camera, boxes, content hash, problems, ...), by DuckDB alone in one statement.

``text_index_floor_s`` is tantivy indexing the same documents alone. DESIGN.md's budget (ingest <= 2x the sum of
its two floors) is checked against the bare imports of what ingest produces: the catalog's columns by DuckDB alone
plus their text by tantivy alone (``ingest_vs_floors_ratio``). The raw-column ratio is printed too: no
ingest that derives the catalog's columns can come near it, since deriving them costs DuckDB alone about 7x the raw
import, and tantivy alone costs another 6x.

Real VST shards with embedded images hold a few thousand rows each; ``--rows-per-shard 2000`` measures that layout
(every cost paid per file shows there).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Skill shares of VST-P (vst-format.md §6), in thousands; the video skills go to the JSON-free `video` folder shape.
SKILLS = {
    "si_3d_detection": 1586, "si_depth_comparison": 412, "si_scene_caption": 106, "si_3d_grounding": 170,
    "si_distance": 251, "si_measurement": 175, "mi_correspondence": 361, "mi_object_object_relation": 230,
    "mi_camera_motion": 88, "mi_3d_detection": 600, "mi_camera_camera": 63, "mi_scene_caption": 35,
    "video": 88,
}
LABELS = np.array(["chair", "table", "sofa", "bed", "cabinet", "lamp", "desk", "tv", "bookshelf", "plant"])
SOURCES = np.array(["scannet", "scannetpp", "arkitscenes", "hypersim", "sunrgbd", "xxx"])
ROWS_PER_SHARD = 100_000  # --rows-per-shard
CONV = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
IMAGES = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def _s(a) -> pa.Array:
    return pa.array(a, pa.string()) if not isinstance(a, pa.Array) else a


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*[_s(p) if not isinstance(p, str) else p for p in parts], "")


def make_shard(skill: str, n: int, seed: int, start: int, random_ids: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = LABELS[rng.integers(0, len(LABELS), n)]
    b = LABELS[rng.integers(0, len(LABELS), n)]
    dist = pc.cast(pa.array(np.round(rng.uniform(0.3, 6.0, n), 1)), pa.string())
    n_img = 1 if skill.startswith("si_") else (0 if skill == "video" else 3)
    pad = "<|video_pad|>" if skill == "video" else "<|image_pad|>" * n_img
    if "detection" in skill or "grounding" in skill:
        question = _join(pad + "The camera's horizontal field of view (hfov) is 60.0 degrees and vertical field of "
                         "view (vfov) is 46.8 degrees; the image is 640x480 pixels. Detect the 3D bounding box of "
                         "every ", a, ".")
        answer = _join('```json\n[{"bbox_3d": [0.1, 0.2, ', dist, ', 0.5, 0.9, 0.5, 0.0, 0.25, 0.0], "label": "',
                       a, '"}]\n```')
    elif skill in ("si_depth_comparison", "mi_object_object_relation"):
        question = _join(pad + "Which is closer to the camera, the ", a, " or the ", b, "?")
        answer = _s(a)
    elif skill == "video":
        question = _join(pad + "These are frames of a video. How many ", a, "s are in this room?")
        answer = pc.cast(pa.array(rng.integers(1, 9, n)), pa.string())
    elif "caption" in skill:
        question = _s([pad + "Describe the scene."] * n)
        answer = _join("A room with a ", a, " next to a ", b, ".")
    else:
        question = _join(pad + "What is the distance between the ", a, " and the ", b,
                         " in meters? Please answer the question using a single word or phrase.")
        answer = dist
    human = pa.StructArray.from_arrays([_s(["human"] * n), question], names=["from", "value"])
    gpt = pa.StructArray.from_arrays([_s(["gpt"] * n), answer], names=["from", "value"])
    idx = np.arange(2 * n).reshape(2, n).T.ravel()
    conv = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2), pa.int32()),
                                    pa.concat_arrays([human, gpt]).take(pa.array(idx)))
    scene = pc.cast(pa.array(rng.integers(0, 1500, n)), pa.string())
    if n_img:
        paths = _join("scenes/scene", pc.utf8_lpad(scene, 4, "0"), "_00/color/",
                      pc.cast(pa.array(rng.integers(0, 999, n)), pa.string()), ".jpg")
        item = pa.StructArray.from_arrays([pa.nulls(n * n_img, pa.binary()),
                                           pc.take(paths, pa.array(np.repeat(np.arange(n), n_img)))],
                                          names=["bytes", "path"])
        images = pa.ListArray.from_arrays(pa.array(np.arange(0, n * n_img + 1, n_img), pa.int32()), item)
    else:
        vpaths = _join("videos/scene", pc.utf8_lpad(scene, 4, "0"), "_00.mp4")
        item = pa.StructArray.from_arrays([pa.nulls(n, pa.binary()), vpaths], names=["bytes", "path"])
        images = pa.ListArray.from_arrays(pa.array(np.arange(0, n + 1), pa.int32()), item)
    meta = json.dumps([{"width": 640, "height": 480, "resized_width": 644, "resized_height": 476}] * max(n_img, 1))
    raw = rng.bytes(16 * n) if random_ids else b""
    ids = ([str(uuid.UUID(bytes=raw[16 * i: 16 * i + 16], version=4)) for i in range(n)] if random_ids
           else _join("bench-", pc.cast(pa.array(np.arange(start, start + n)), pa.string())))
    return pa.table({
        "id": _s(ids),
        "conversations": conv.cast(CONV),
        "images": images.cast(IMAGES),
        "data_source": _s(SOURCES[rng.integers(0, len(SOURCES), n)]),
        "type": _s([{"video": "video"}.get(skill, "qa")] * n),
        "meta_info": _s([meta] * n),
    })


def generate(out: Path, samples: int, rows_per_shard: int = ROWS_PER_SHARD, random_ids: bool = False) -> list[Path]:
    total_share = sum(SKILLS.values())
    files, start = [], 0
    for k, (skill, share) in enumerate(SKILLS.items()):
        n_skill = int(round(samples * share / total_share))
        for part, lo in enumerate(range(0, n_skill, rows_per_shard)):
            n = min(rows_per_shard, n_skill - lo)
            path = out / "vst_p" / skill / f"part-{part:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(make_shard(skill, n, seed=k * 1000 + part, start=start, random_ids=random_ids), path,
                           row_group_size=8192)
            files.append(path)
            start += n
    return files


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _timed_new_text(fn, text: str, repeat: int, pad: str = " ") -> float:
    """Median ms of ``fn(text)`` for a text never searched before in this process, as a curator's new search is:
    each run adds a space (or ``pad``) to it (the same search to tantivy, a new one to every cache keyed by the
    text)."""
    times = []
    for i in range(1, repeat + 1):
        variant = text + pad * i
        t = time.perf_counter()
        fn(variant)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


# Text queries: selective (two words that must both appear), broad (either of two labels; each is in about a fifth of
# the rows), broadest (one word in most detection and depth questions).
TEXT_QUERIES = {"selective": "lamp sofa", "broad": "chair OR table", "broadest": "camera"}


def _queries(settings) -> dict:
    from curation.query import catalog as query
    from curation.query.catalog import CatalogQuery
    from curation.query.filters import FilterSpec

    q = CatalogQuery(settings)
    spec = FilterSpec(skills=["si_distance", "si_depth_comparison"], sources=["scannet"])
    # Count + facets of a different filter each time (the app caches a repeated one). The first call after
    # opening a catalog builds the facet cube; filters outside the cube's fields (state, checks, ids) scan.
    specs = itertools.cycle([spec, FilterSpec(), FilterSpec(skills=["si_distance"]),
                             FilterSpec(groups=["single"], has_reasoning=False),
                             FilterSpec(sources=["arkitscenes"]),
                             FilterSpec(skills=["si_height", "si_size"], answer_kinds=["number"]),
                             FilterSpec(has_problems=True, types=["qa"])])

    def count_and_facets(on: CatalogQuery) -> None:
        s = next(specs)
        on.count(s), on.facets(s)

    t = time.perf_counter()
    q.facets(spec)
    cube_build_ms = (time.perf_counter() - t) * 1000
    facet_ms = _timed(lambda: count_and_facets(q), 7)
    max_rows, query._CUBE_MAX_ROWS = query._CUBE_MAX_ROWS, 0  # read at the cube's build: a new one never builds
    scanning = CatalogQuery(settings)
    facet_scan_ms = _timed(lambda: count_and_facets(scanning), 7)
    scanning.close()
    query._CUBE_MAX_ROWS = max_rows
    page_first_ms = _timed(lambda: q.page(FilterSpec(), limit=50), 7)
    total = q.count(FilterSpec())
    # Pages walk the catalog's row order: the cursor ~100k rows before the end.
    deep = str(q.cursor().execute("SELECT row_key FROM samples ORDER BY row_key LIMIT 1 OFFSET ?",
                                  [max(total - 100_000, 0)]).fetchone()[0])
    page_deep_ms = _timed(lambda: q.page(FilterSpec(), after=deep, limit=50), 7)
    filtered_deep_ms = _timed(lambda: q.page(spec, after=deep, limit=50), 7)
    deep_id = q.page(FilterSpec(), after=deep, limit=1).rows[0]["sample_id"]
    sample_ms = _timed(lambda: q.sample(deep_id), 7)  # opened from a page (or a review step): read by its row key
    linked = CatalogQuery(settings)  # opened from a shared link: no page showed it, so its id is looked for
    sample_link_ms = _timed(lambda: linked.sample(deep_id), 3)
    linked.close()
    figures = {"facet_ms": round(facet_ms, 1), "facet_first_ms": round(cube_build_ms, 1),
               "facet_scan_ms": round(facet_scan_ms, 1), "page_first_ms": round(page_first_ms, 1),
               "page_deep_ms": round(page_deep_ms, 1), "page_deep_filtered_ms": round(filtered_deep_ms, 1),
               "sample_lookup_ms": round(sample_ms, 1), "sample_link_ms": round(sample_link_ms, 1),
               "catalog_rows": total,
               "random_ids": not deep_id.startswith("bench-")}
    skills = ["si_distance", "si_3d_detection"]
    middle = q.cursor().execute("SELECT row_key FROM samples ORDER BY row_key LIMIT 1 OFFSET ?",
                                [total // 2]).fetchone()[0]
    for label, text in TEXT_QUERIES.items():
        hits = q.count(FilterSpec(text=text))
        figures[f"text_{label}"] = {
            "query": text, "hits": hits, "share": round(hits / max(total, 1), 3),
            "count_ms": round(_timed_new_text(lambda x: q.count(FilterSpec(text=x)), text, 7), 1),
            # Browse counts a search, then shows its first page (the count's first hit tells where the page starts).
            "page_first_ms": round(_timed_new_text(lambda x: q.page(FilterSpec(text=x)), text, 7), 1),
            "page_first_uncounted_ms": round(_timed_new_text(lambda x: q.page(FilterSpec(text=x)), text, 7, "\t"), 1),
            "page_middle_ms": round(_timed_new_text(lambda x: q.page(FilterSpec(text=x), after=middle), text, 7), 1),
            "filtered_first_count_and_facets_ms": round(_timed_new_text(
                lambda x: (q.count(FilterSpec(text=x, skills=skills)), q.facets(FilterSpec(text=x, skills=skills))),
                text, 3), 1),
            "filtered_page_ms": round(_timed(lambda t=text: q.page(FilterSpec(text=t, skills=skills)), 5), 1),
            "relevance_page_first_ms": round(_timed_new_text(
                lambda x: q.page(FilterSpec(text=x), order="relevance"), text, 3), 1),
        }
    figures["queries_rss_mb"] = round(_rss_mb())
    q.close()
    return figures


def phase(name: str, out: Path) -> dict:
    """One measured phase, run in its own process so its peak RSS is its own."""
    from curation.settings import load_settings

    settings = load_settings(out / "home")
    if name == "duckdb_import":
        import duckdb

        db = out / "bare.duckdb"
        db.unlink(missing_ok=True)
        con = duckdb.connect(str(db))
        t = time.perf_counter()
        con.execute("CREATE TABLE t AS SELECT id, conversations, images, data_source, type, meta_info "
                    f"FROM read_parquet('{out}/vst_p/*/*.parquet')")
        con.execute("CHECKPOINT")
        secs = time.perf_counter() - t
        con.close()
        db.unlink()
        return {"duckdb_import_s": round(secs, 2), "duckdb_import_rss_mb": round(_rss_mb())}
    if name == "ingest":
        from curation.ingest.run import ingest

        shutil.rmtree(settings.home, ignore_errors=True)
        t = time.perf_counter()
        s = ingest([out / "vst_p"], settings, progress=True)
        secs = time.perf_counter() - t
        return {"ingest_s": round(secs, 2), "ingest_rows": s.rows_ok, "ingest_rss_mb": round(_rss_mb())}
    if name == "ingest_no_text":
        from curation.ingest.run import ingest

        shutil.rmtree(out / "home_nt", ignore_errors=True)
        s2 = load_settings(out / "home_nt")
        t = time.perf_counter()
        ingest([out / "vst_p"], s2, progress=False, text_index=False)
        secs = time.perf_counter() - t
        shutil.rmtree(out / "home_nt", ignore_errors=True)
        return {"ingest_catalog_only_s": round(secs, 2)}
    if name == "floors":
        return _floors(out)
    if name == "queries":
        return _queries(settings)
    raise SystemExit(f"unknown phase {name}")


# The raw relation the Python readers hand to ingest, built by DuckDB alone from these text-only shards.
RAW_SQL = """SELECT id AS source_id,
  list_transform(conversations, lambda t: struct_pack(role := t."from", text := t.value)) AS conversations,
  NULL::VARCHAR AS thought,
  list_transform(images, lambda m, i: struct_pack(kind := CASE WHEN i = 1 AND type = 'video' THEN 'video' ELSE 'image'
    END, digest := NULL::VARCHAR, width := NULL::INTEGER, height := NULL::INTEGER, path := m.path,
    byte_size := NULL::BIGINT, embedded := false, problem := 'missing_file')) AS media,
  data_source, type, meta_info, 'sft' AS kind, filename AS source_file, 'vst-sft-parquet' AS source_format,
  0::INTEGER AS row_group, file_row_number::INTEGER AS row_in_group, file_row_number AS row_index,
  NULL::STRUCT(code VARCHAR, field VARCHAR, message VARCHAR)[] AS problems, 'vst-p' AS dataset,
  regexp_extract(filename, '([^/]+)/[^/]+$', 1) AS subset, 1 AS ingest_run
FROM read_parquet('{files}', filename = true, file_row_number = true)"""


def _floors(out: Path) -> dict:
    """Lower bounds for any ingest that produces the catalog's columns: the canonical SELECT run by DuckDB alone
    over all files in one statement (no Python reader, no per-file transactions), and tantivy indexing the same
    text alone (documents prepared before the clock starts)."""
    import duckdb

    from curation.ingest.canonical import canonical_select, content_hash_sql
    from curation.ingest.text_index import TEXT_FIELDS, _open, document_json_sql
    from curation.vst.taxonomy import load_taxonomy

    db = out / "floor.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    raw = RAW_SQL.format(files=f"{out}/vst_p/*/*.parquet")
    select = canonical_select(load_taxonomy(), source=f"(SELECT *, {content_hash_sql()} AS content_hash, "
                                                      f"coalesce(source_id, content_hash) AS sample_id FROM ({raw}))")
    t = time.perf_counter()
    con.execute(f"CREATE TABLE samples AS {select}")
    con.execute("CHECKPOINT")
    derive_s = time.perf_counter() - t
    docs = [d for (d,) in con.execute(document_json_sql("(SELECT *, rowid AS row_key FROM samples)")).fetchall()]
    lengths = " + ".join(f"strlen(coalesce({f}, ''))" for f in TEXT_FIELDS)
    text_bytes = con.execute(f"SELECT sum({lengths}) FROM samples").fetchone()[0]
    con.close()
    db.unlink()
    index_dir = out / "floor_index"
    shutil.rmtree(index_dir, ignore_errors=True)
    writer = _open(index_dir, create=True).writer(128 << 20, 2)
    t = time.perf_counter()
    for d in docs:
        writer.add_json(d)
    writer.commit()
    writer.wait_merging_threads()
    text_s = time.perf_counter() - t
    shutil.rmtree(index_dir, ignore_errors=True)
    return {"catalog_import_s": round(derive_s, 2), "text_index_floor_s": round(text_s, 2),
            "text_mb": round(text_bytes / 1e6), "floors_rss_mb": round(_rss_mb())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=4_100_000)
    ap.add_argument("--rows-per-shard", type=int, default=ROWS_PER_SHARD)
    ap.add_argument("--random-ids", action="store_true", help="random UUID sample ids, as real VST shards have")
    ap.add_argument("--out", default="bench/out/scale")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--keep", action="store_true", help="keep the generated shards and home")
    ap.add_argument("--skip-generate", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    if args.phase:
        print("PHASE " + json.dumps(phase(args.phase, out)))
        return 0
    figures: dict = {"samples": args.samples}
    if not args.skip_generate:
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        files = generate(out, args.samples, args.rows_per_shard, args.random_ids)
        print(f"generated {len(files)} shards, {args.samples:,} rows in {time.perf_counter() - t:.1f} s")
    for name in ("duckdb_import", "ingest", "ingest_no_text", "floors", "queries"):
        proc = subprocess.run([sys.executable, "-m", "bench.scale", "--out", str(out), "--phase", name],
                              capture_output=True, text=True, env={**os.environ})
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PHASE ")), None)
        if proc.returncode or not line:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit(f"phase {name} failed")
        figures.update(json.loads(line[6:]))
        print(f"{name}: {json.loads(line[6:])}")
    figures["ingest_ratio"] = round(figures["ingest_s"] / figures["duckdb_import_s"], 2)
    figures["ingest_catalog_only_ratio"] = round(figures["ingest_catalog_only_s"] / figures["duckdb_import_s"], 2)
    figures["catalog_import_ratio"] = round(figures["catalog_import_s"] / figures["duckdb_import_s"], 2)
    figures["text_index_floor_ratio"] = round(figures["text_index_floor_s"] / figures["duckdb_import_s"], 2)
    # The budget's ratio: ingest (catalog + text index) against DuckDB importing the catalog's columns alone.
    figures["ingest_vs_catalog_import"] = round(figures["ingest_s"] / figures["catalog_import_s"], 2)
    figures["ingest_catalog_only_vs_catalog_import"] = round(
        figures["ingest_catalog_only_s"] / figures["catalog_import_s"], 2)
    # How close ingest comes to the work it cannot avoid: both floors, run one after the other.
    figures["ingest_vs_floors_ratio"] = round(
        figures["ingest_s"] / (figures["catalog_import_s"] + figures["text_index_floor_s"]), 2)
    figures["peak_rss_mb"] = max(v for k, v in figures.items() if k.endswith("_rss_mb"))
    print(f"\ningest {figures['ingest_s']} s (catalog only {figures['ingest_catalog_only_s']} s), "
          f"{figures['ingest_rows']:,} rows in shards of {args.rows_per_shard:,}")
    print(f"  vs the bare imports of what it produces, the catalog's columns by DuckDB alone "
          f"({figures['catalog_import_s']} s) + their text by tantivy alone ({figures['text_index_floor_s']} s): "
          f"{figures['ingest_vs_floors_ratio']}x  budget <= 2x: {_verdict(figures['ingest_vs_floors_ratio'], 2)}")
    print(f"  catalog only vs the catalog's columns by DuckDB alone: "
          f"{figures['ingest_catalog_only_vs_catalog_import']}x; "
          f"ingest vs them: {figures['ingest_vs_catalog_import']}x")
    print(f"  vs bare DuckDB import of the raw columns {figures['duckdb_import_s']} s: {figures['ingest_ratio']}x "
          f"(catalog only {figures['ingest_catalog_only_ratio']}x; the catalog's columns alone cost "
          f"{figures['catalog_import_ratio']}x, tantivy alone {figures['text_index_floor_ratio']}x)")
    print(f"facets {figures['facet_ms']} ms (the first, which builds the facet cube, {figures['facet_first_ms']} ms; "
          f"by scanning the catalog, as a filter on state, checks or ids does, {figures['facet_scan_ms']} ms), "
          f"peak RSS {figures['peak_rss_mb']} MB")
    ids = "random UUID" if figures["random_ids"] else "in-order"
    print(f"pages ({ids} ids): first {figures['page_first_ms']} ms, deep {figures['page_deep_ms']} ms, deep under a "
          f"filter {figures['page_deep_filtered_ms']} ms  budget <= 20 ms: "
          f"{_verdict(max(figures['page_deep_ms'], figures['page_deep_filtered_ms']), 20)}; "
          f"a sample opened from a page or review step {figures['sample_lookup_ms']} ms, from a shared link (by id) "
          f"{figures['sample_link_ms']} ms")
    for label in TEXT_QUERIES:
        t = figures[f"text_{label}"]
        print(f"text {label} {t['query']!r}: {t['hits']:,} hits ({t['share']:.0%}); count {t['count_ms']} ms "
              f"(<= 50: {_verdict(t['count_ms'], 50)}), first page {t['page_first_ms']} ms "
              f"(<= 20: {_verdict(t['page_first_ms'], 20)}; before any count {t['page_first_uncounted_ms']} ms), "
              f"a middle page {t['page_middle_ms']} ms; with a skill "
              f"filter: first count + facets {t['filtered_first_count_and_facets_ms']} ms (collects every hit), "
              f"then a page {t['filtered_page_ms']} ms; first page by relevance "
              f"{t['relevance_page_first_ms']} ms")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    keys = ["ingest_s", "duckdb_import_s", "ingest_ratio", "catalog_import_s", "ingest_vs_catalog_import",
            "facet_ms", "page_first_ms", "page_deep_ms", "peak_rss_mb"]
    print(json.dumps({k: figures[k] for k in keys} | {k: v for k, v in figures.items() if k not in keys}))
    return 0


def _verdict(value: float, budget: float) -> str:
    return "OK" if value <= budget else "OVER"


if __name__ == "__main__":
    raise SystemExit(main())
