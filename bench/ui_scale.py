"""The app at full size, in a real browser: a filter change until the table is rendered, a review step (approve ->
the next sample of the queue usable, median of 20), and opening a sample whose scene has 1M points, with the catalog
at 4.1M rows. Budgets (DESIGN.md): filter change rendered <= 1 s; review step <= 1 s; sample view with a 1M-point
scene <= 1.5 s.

    python -m bench.ui_scale                      # builds bench/out/ui_home (demo rows replicated to 4.1M) once
    python -m bench.ui_scale --rows 200000        # a smaller catalog (with --rebuild when the home has another size)
    python -m bench.ui_scale --rebuild            # build the home again

The catalog is the ingested demo replicated in DuckDB (each copy keeps its media pointers, so every row opens with
its image); one scene is densified to 1M points. Chromium is Debian's, headless, driven by Playwright. Without a
GPU it draws WebGL in software (SwiftShader), so the 3D view's browser time here is far above a desktop's; the
server's share (read, open3d voxel downsample, figure) is reported apart. Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BIG_SCENE = "room_0001"


def build_home(home: Path, rows: int, scene_points: int) -> None:
    """Demo -> ingest -> replicate the catalog rows to ``rows``; densify one scene to ``scene_points``."""
    import numpy as np

    from curation.demo import generate_demo
    from curation.ingest.run import ingest
    from curation.settings import load_settings
    from db.catalog import open_catalog

    if home.exists():
        shutil.rmtree(home)
    t0 = time.perf_counter()
    generate_demo(home / "demo", samples=2000, seed=11, progress=False)
    settings = load_settings(home, env={}).ensure_dirs()
    ingest([home / "demo" / "vst_p", home / "demo" / "vst_r"], settings, progress=False)
    con = open_catalog(settings.catalog_path, read_only=False)
    base = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    copies = max(1, -(-rows // base))
    # Copy k of a row gets the id '<id>~k'; copy 0 keeps the original id (and its text-index entry).
    con.execute("CREATE TEMP TABLE originals AS SELECT * FROM samples")
    con.execute(
        "INSERT INTO samples BY NAME SELECT originals.* EXCLUDE (row_key) "  # copies get row keys of their own
        "REPLACE (sample_id || '~' || lpad(k::VARCHAR, 5, '0') AS sample_id) "
        "FROM originals, range(1, ?) r(k)", [copies])
    excess = base * copies - rows
    if excess > 0:
        con.execute("DELETE FROM samples WHERE sample_id IN (SELECT sample_id FROM samples WHERE sample_id LIKE '%~%' "
                    f"ORDER BY sample_id DESC LIMIT {int(excess)})")
    con.execute("CHECKPOINT")
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    con.close()

    import open3d as o3d

    ply = settings.scene_root / f"{BIG_SCENE}.ply"
    pcd = o3d.io.read_point_cloud(str(ply))
    pts, col = np.asarray(pcd.points), np.asarray(pcd.colors)
    reps = -(-scene_points // len(pts))
    rng = np.random.default_rng(0)
    dense = np.concatenate([pts + rng.normal(0, 0.01, pts.shape) for _ in range(reps)])[:scene_points]
    dense_col = np.concatenate([col] * reps)[:scene_points]
    big = o3d.geometry.PointCloud()
    big.points = o3d.utility.Vector3dVector(dense)
    big.colors = o3d.utility.Vector3dVector(dense_col)
    o3d.io.write_point_cloud(str(ply), big, write_ascii=False)
    print(f"built {home}: {n:,} catalog rows ({copies} copies of {base}), scene {BIG_SCENE} with "
          f"{scene_points:,} points [{time.perf_counter() - t0:.0f} s]", flush=True)


def start_app(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "CURATOR_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "Home.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise TimeoutError("streamlit did not start")


def server_side(home: Path, sample_id: str) -> dict:
    """The server's share of opening the sample: scene read + downsample (cold, warm) and the figure's JSON."""
    import plotly.io as pio

    from curation.media.scenes import load_scene_cloud, sample_scene
    from curation.presenters.sample import sample_geometry, scene_figure, with_scene_objects
    from curation.query.catalog import CatalogQuery
    from curation.settings import load_settings

    settings = load_settings(home, env={})
    q = CatalogQuery(settings)
    t = time.perf_counter()
    row = q.sample(sample_id)
    sc = sample_scene(row, settings.scene_root)
    geom = with_scene_objects(sample_geometry(row), row["question"] or "", sc.objects, sc.camera)
    lookup = time.perf_counter() - t
    cache = Path(settings.media_cache_dir) / "bench-scenes"
    shutil.rmtree(cache, ignore_errors=True)
    out = {"lookup_s": lookup}
    for label in ("cold", "warm"):
        t = time.perf_counter()
        cloud = load_scene_cloud(settings.scene_root, BIG_SCENE, 50_000, cache)
        out[f"scene_{label}_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pio.to_json(scene_figure(geom, cloud, sc.other_cameras), validate=False)
    out["figure_s"] = time.perf_counter() - t
    out["scene_source_points"] = cloud.source_points
    out["scene_points_sent"] = cloud.n_points
    q.close()
    return out


def browser_side(url: str, skills: list[str], sample_id: str, repeat: int) -> dict:
    from playwright.sync_api import expect, sync_playwright

    out: dict = {"filter_change_s": [], "sample_open_s": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/Browse")
        expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=120_000)
        for skill in skills[:repeat]:
            page.locator(".st-key-flt_skills input").click()
            page.locator(".st-key-flt_skills input").fill(skill)
            t = time.perf_counter()
            page.keyboard.press("Enter")
            expect(page.get_by_text(f"samples match · skills={skill}")).to_be_visible(timeout=120_000)
            page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=120_000)
            out["filter_change_s"].append(time.perf_counter() - t)
            page.keyboard.press("Escape")
            page.goto(f"{url}/Browse")  # back to everything for the next skill
            expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=120_000)
        # Opening the sample as a curator does: click its row in Browse (the app is loaded; no page reload).
        for _ in range(repeat):
            page.goto(f"{url}/Browse?sample_ids={sample_id}")
            grid = page.locator('[data-testid="stDataFrame"]')
            expect(grid).to_be_visible(timeout=120_000)
            page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=120_000)
            box = grid.bounding_box()
            t = time.perf_counter()
            page.mouse.click(box["x"] + 200, box["y"] + 35 + 22)  # the first row's text opens it (its box ticks it)
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')].some(i => i.complete && "
                "i.naturalWidth > 0)", timeout=120_000)
            out.setdefault("sample_image_s", []).append(time.perf_counter() - t)
            expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_attached(timeout=300_000)
            out.setdefault("sample_3d_element_s", []).append(time.perf_counter() - t)
            expect(page.locator('[data-testid="stPlotlyChart"] .gl-container canvas').first).to_be_attached(
                timeout=300_000)
            out["sample_open_s"].append(time.perf_counter() - t)
        # The scene's cloud is drawn on demand: the curator turns it on (the 3D view reruns alone, a fragment).
        for _ in range(repeat):
            page.goto(f"{url}/Sample?id={sample_id}")
            expect(page.locator('[data-testid="stPlotlyChart"] .gl-container canvas').first).to_be_attached(
                timeout=300_000)
            page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=300_000)
            t = time.perf_counter()
            page.locator(".st-key-scene_cloud_on label").first.click()
            page.wait_for_function(_SCENE_DRAWN, arg=f"scene {BIG_SCENE}", timeout=300_000)
            out.setdefault("scene_cloud_s", []).append(time.perf_counter() - t)
        browser.close()
    return out


# The next sample is usable: its heading, a decoded image, its turns and an enabled Approve button, all from the
# current script run (Streamlit marks what the run has not re-sent yet as stale). Polled on the page's main thread,
# so a browser busy drawing a 3D view counts against the step.
_SAMPLE_USABLE = """(sid) => {
  const h = document.querySelector('h1');
  if (!h || !h.textContent.includes(sid)) return false;
  const btn = document.querySelector('.st-key-btn_approve[data-stale="false"] button');
  if (!btn || btn.disabled) return false;
  if (!document.querySelector('[data-testid="stChatMessage"] [data-stale="false"]')) return false;
  return [...document.querySelectorAll('[data-stale="false"] [data-testid="stImage"] img')]
    .some(i => i.complete && i.naturalWidth > 0);
}"""


# The 3D view holds a trace of the scene's points (plotly keeps a figure's traces on its graph element, and has drawn
# them once they are there).
_SCENE_DRAWN = """(name) => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
  .some(g => (g.data || []).some(t => (t.name || '').startsWith(name)))"""


def review_steps(url: str, skill: str, ids: list[str]) -> list[float]:
    """Seconds from pressing Approve (auto-advance on) until the next sample of the queue is usable, once per step
    through ``ids`` (the skill's queue, in order): a curator working through a review queue. A fresh browser session
    each time (the first sample is opened by link)."""
    from playwright.sync_api import expect, sync_playwright

    out: list[float] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/Sample?skills={skill}&id={ids[0]}")
        page.get_by_placeholder("your name").fill("bench")
        page.get_by_role("button", name="Start reviewing").click()
        expect(page.get_by_text("Reviewing as bench")).to_be_visible(timeout=120_000)
        page.wait_for_function(_SAMPLE_USABLE, arg=ids[0], timeout=120_000)
        page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=120_000)
        for nxt in ids[1:]:
            t = time.perf_counter()
            page.locator('.st-key-btn_approve[data-stale="false"] button').first.click()
            page.wait_for_function(_SAMPLE_USABLE, arg=nxt, timeout=120_000)
            out.append(time.perf_counter() - t)
            # The rest of the page (the 3D view) finishes before the curator presses the next key.
            page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=120_000)
        browser.close()
    return out


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=4_100_000)
    ap.add_argument("--scene-points", type=int, default=1_000_000)
    ap.add_argument("--home", type=Path, default=ROOT / "bench" / "out" / "ui_home")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="review steps per queue")
    args = ap.parse_args(argv)
    if args.rebuild or not (args.home / "catalog.duckdb").exists():
        build_home(args.home, args.rows, args.scene_points)
    from curation.query.catalog import CatalogQuery
    from curation.query.filters import FilterSpec
    from curation.settings import load_settings

    settings = load_settings(args.home, env={})
    q = CatalogQuery(settings)
    rows = q.count(FilterSpec())
    skills = [s for s in q.facets(FilterSpec())["skills"] if s != "unknown"]
    sample_id = q.cursor().execute(
        "SELECT min(sample_id) FROM samples WHERE scene_id = ? AND skill LIKE '%3d_detection' AND NOT contains("
        "sample_id, '~')", [BIG_SCENE]).fetchone()[0]
    # Two review queues: a skill whose samples have scenes (3D boxes, a point cloud), and the largest image skill
    # without scenes.
    flat = q.cursor().execute(
        "SELECT skill FROM samples WHERE scene_id IS NULL AND n_images > 0 AND skill <> 'unknown' GROUP BY skill "
        "ORDER BY count(*) DESC LIMIT 1").fetchone()
    queues = {"with a scene": "si_3d_detection", "without a scene": flat[0] if flat else None}
    queue_ids = {name: [r["sample_id"] for r in q.page(FilterSpec(skills=[skill]), limit=args.steps + 1).rows]
                 for name, skill in queues.items() if skill}
    q.close()
    server = server_side(args.home, sample_id)
    shutil.rmtree(Path(settings.media_cache_dir) / "scenes", ignore_errors=True)  # the first open is a cold one
    from curation.labelstudio.server import pick_free_port

    port = pick_free_port()
    proc = start_app(args.home, port)
    try:
        browser = browser_side(f"http://127.0.0.1:{port}", skills, sample_id, args.repeat)
        steps = {name: review_steps(f"http://127.0.0.1:{port}", queues[name], ids) for name, ids in queue_ids.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    figures = {
        "catalog_rows": rows,
        "filter_change_rendered_s_median": statistics.median(browser["filter_change_s"]),
        "filter_change_rendered_s": browser["filter_change_s"],
        "sample_image_shown_s": browser["sample_image_s"],
        "sample_3d_element_s": browser["sample_3d_element_s"],
        "sample_3d_view_drawn_s": browser["sample_open_s"],
        "scene_cloud_drawn_s": browser["scene_cloud_s"],
        **{f"review_step_s_median_{name.replace(' ', '_')}": statistics.median(v) for name, v in steps.items()},
        **{f"review_step_s_{name.replace(' ', '_')}": v for name, v in steps.items()},
        **{f"server_{k}": v for k, v in server.items()},
    }
    print(f"catalog: {rows:,} rows; scene {BIG_SCENE}: {server['scene_source_points']:,} points, "
          f"{server['scene_points_sent']:,} sent to the browser")
    print(f"filter change -> table rendered: median {figures['filter_change_rendered_s_median']:.2f} s "
          f"(budget 1.0 s) {_fmt(browser['filter_change_s'])}")
    print(f"click a row -> sample image shown: {_fmt(browser['sample_image_s'])} s (first open is cold)")
    print(f"click a row -> 3D element in the page: {_fmt(browser['sample_3d_element_s'])} s")
    print(f"click a row -> 3D view drawn (boxes, software WebGL): {_fmt(browser['sample_open_s'])} s")
    print(f"turn on the scene's cloud -> drawn (software WebGL): {_fmt(browser['scene_cloud_s'])} s "
          "(budget 1.5 s for the 1M-point scene view)")
    for name, v in steps.items():
        print(f"review step, approve -> next sample usable ({name}, {queues[name]}): median "
              f"{statistics.median(v):.2f} s over {len(v)} steps (budget 1.0 s) {_fmt(v)}")
    print(f"server share: scene cold {server['scene_cold_s']:.2f} s, warm {server['scene_warm_s']:.3f} s, "
          f"figure {server['figure_s']:.2f} s, lookup {server['lookup_s']:.3f} s")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
