"""The Mixtures page: a curator starts from an example recipe, sees what each component gets and where it falls
short, edits the recipe as YAML or in the form (the two stay in sync), is told plainly what is wrong with a bad
recipe, exports a small mixture and finds it among the past exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from curation.mixtures.recipe import load_recipe, parse_recipe
from curation.mixtures.selection import select_mixture
from curation.presenters import mixtures as mv
from curation.query.catalog import CatalogQuery
from tests.app.test_app_support import REPO, app_at, demo_app_home, forget_app_caches, point_app_at, shown, unescaped
from tests.app.test_browser import app_server as app_server  # the fixture: streamlit run on a free port

MIXTURES = "pages/4_Mixtures.py"
EXAMPLE = "demo-all-formats.yaml"


@pytest.fixture
def settings(monkeypatch, tmp_path, demo_home):
    """The shared demo catalog; exports, state and caches under this test's own home (tmp_path)."""
    yield demo_app_home(monkeypatch, tmp_path, demo_home)
    forget_app_caches()


def table_with(at, column: str) -> list[dict]:
    """The first table showing ``column`` (dataframes carry no key in AppTest)."""
    return next(d.value for d in at.dataframe if column in d.value.columns).to_dict("records")


def component_table(at) -> list[dict]:
    return table_with(at, "component")


def set_yaml(at, text: str):
    return at.text_area(key="mix_yaml").input(text).run()


def test_an_example_recipe_shows_what_each_component_gets_and_where_it_falls_short(settings):
    at = app_at(MIXTURES)
    assert not at.exception
    at.selectbox(key="mix_example").select(EXAMPLE)
    at.button(key="mix_load_example").click().run()
    assert not at.exception and not at.error

    path = REPO / "examples" / "recipes" / EXAMPLE
    assert at.text_area(key="mix_yaml").value == path.read_text()  # the file as written, comments included
    assert "demo-mix" in [t.value for t in at.text_input]  # ... and the form filled from it
    q = CatalogQuery(settings)
    try:
        expected = select_mixture(load_recipe(path), q)
    finally:
        q.close()
    rows = component_table(at)
    assert [(r["component"], r["asked"], r["available"], r["selected"]) for r in rows] == [
        (c.name, c.asked, c.available, c.selected) for c in expected.components]
    assert {m.label: m.value for m in at.metric}["Rows selected"] == f"{expected.rows:,}"
    # 300 demo samples cannot fill a 600-row mixture: the short components say so, in the table and as warnings.
    short = [c for c in expected.components if c.shortfall]
    assert short
    for c in short:
        assert next(r for r in rows if r["component"] == c.name)["status"] == f"⚠ short by {c.shortfall:,}"
        assert any(f"component '{c.name}': asked {c.asked}" in w for w in shown(at, "warning"))
    assert len(at.get("plotly_chart")) >= 2  # per component, per skill (and exclusions by reason)


def test_yaml_naming_an_unknown_skill_or_bad_weights_is_a_clear_message(settings):
    at = app_at(MIXTURES)
    set_yaml(at, "name: typo\ntotal: 10\ncomponents:\n  - name: depth\n    filter: {skills: [si_depht]}\n"
                 "    weight: 1.0\nformats: [vst-sft]\n")
    assert not at.exception
    assert any("unknown skill" in e and "si_depht" in e for e in shown(at, "error"))
    assert not at.metric  # no counts for a recipe that is not valid
    # The YAML parsed, so the form shows it (the typo marked as not in the catalog).
    skills = at.multiselect(key="mix_f2_c0_skills")
    assert skills.value == ["si_depht"]

    set_yaml(at, "name: halves\ntotal: 10\ncomponents:\n  - {name: a, filter: {groups: [single]}, weight: 0.5}\n"
                 "  - {name: b, filter: {groups: [multi]}, weight: 0.4}\n")
    assert not at.exception
    assert any("must sum to 1" in e and "0.9" in e for e in shown(at, "error"))


def test_yaml_that_does_not_parse_names_the_line_and_keeps_the_last_good_recipe(settings):
    at = app_at(MIXTURES)
    good = at.text_area(key="mix_yaml").value
    set_yaml(at, "name: broken\ncomponents:\n  - name: a\n    filter: {skills: [si_distance]\n    count: 3\n")
    assert not at.exception
    problem = next(e for e in shown(at, "error") if "does not parse" in e)
    assert "line 5" in problem
    assert any("last recipe that did" in w for w in shown(at, "warning"))
    assert component_table(at)[0]["component"] == yaml.safe_load(good)["components"][0]["name"]


def test_the_form_writes_the_yaml_and_the_counts_follow(settings):
    at = app_at(MIXTURES)
    at.number_input(key="mix_f1_total").set_value(40).run()
    assert not at.exception
    assert yaml.safe_load(at.text_area(key="mix_yaml").value)["total"] == 40
    assert component_table(at)[0]["asked"] == 40
    at.multiselect(key="mix_f1_c0_groups").select("video").run()
    data = yaml.safe_load(at.text_area(key="mix_yaml").value)
    assert data["components"][0]["filter"] == {"groups": ["video"]}
    assert component_table(at)[0]["matching"] < 300

    at.button(key="mix_f1_add").click().run()  # a new component takes the weight left over: none here -> a count
    data = yaml.safe_load(at.text_area(key="mix_yaml").value)
    assert [c["name"] for c in data["components"]] == ["everything", "component-2"]
    assert data["components"][1]["count"] == 100
    assert not at.exception


def test_an_export_is_written_with_its_manifest_and_listed_among_past_exports(settings):
    at = app_at(MIXTURES)
    assert any("No export yet" in i for i in shown(at, "info"))
    set_yaml(at, "name: tiny-mix\nseed: 1\ncomponents:\n  - {name: distance, filter: {skills: [si_distance]}, "
                 "count: 4}\nexclude: {flagged: true}\nformats: [vst-sft, llava]\n")
    assert not at.exception and not at.error
    out = Path(settings.exports_dir) / "tiny-mix"
    assert at.text_input(key="mix_exp_dir_tiny-mix").value == str(out)
    at.multiselect(key="mix_exp_formats_tiny-mix_vst-sft-llava").unselect("llava").run()
    at.button(key="mix_export").click().run()
    assert not at.exception and not at.error

    manifest = json.loads((out / "vst-sft" / "manifest.json").read_text())
    assert manifest["written"]["rows"] == 4 and manifest["recipe"]["name"] == "tiny-mix"
    assert any("Written: vst-sft (4 rows)" in s for s in shown(at, "success"))
    listed = [r["file"] for r in table_with(at, "sha256")]
    assert listed == [f["path"] for f in manifest["files"]]

    past = table_with(at, "folder")
    assert [(p["folder"], p["recipe"], p["format"], p["rows"]) for p in past] == [
        ("tiny-mix/vst-sft", "tiny-mix", "vst-sft", 4)]
    assert any(unescaped(e.label).startswith("tiny-mix · vst-sft") for e in at.expander)

    at.button(key="mix_export").click().run()  # a second export to the same folder is refused, not overwritten
    assert any("Already exported here" in e for e in shown(at, "error"))
    assert json.loads((out / "vst-sft" / "manifest.json").read_text())["created_at"] == manifest["created_at"]


def test_without_a_catalog_the_page_says_how_to_build_one(monkeypatch, tmp_path):
    point_app_at(monkeypatch, tmp_path / "empty")
    try:
        at = app_at(MIXTURES)
        assert not at.exception
        assert any("No catalog" in e for e in shown(at, "error"))
    finally:
        forget_app_caches()


# --- the page's helpers, without Streamlit ----------------------------------------------------------------------


def test_the_form_keeps_what_it_does_not_show_and_the_yaml_round_trips():
    base = yaml.safe_load((REPO / "examples/recipes/spatial-sft-v1.yaml").read_text())
    form = mv.form_from_data(base)
    assert [c.size_mode for c in form.components] == ["weight", "weight"]
    assert form.components[1].skills == ["si_distance", "video_measurement"]
    form.components[0].size, form.components[1].size = 0.4, 0.6
    out = mv.data_from_form(form, base)
    assert out["components"][1]["upsample"] is True and out["components"][1]["max_repeat"] == 2
    assert out["components"][1]["filter"]["sources"] == ["scannet"] and out["shard_size"] == "1GB"
    assert out["exclude"]["near_duplicates"] is True and out["apply_fixes"] is True
    again = yaml.safe_load(mv.recipe_yaml(out))
    assert again == out and parse_recipe(again).targets() == [40000, 60000]


def test_syntax_errors_carry_their_line():
    data, problem = mv.parse_yaml("name: a\ntotal: [1, 2\nseed: 3\n")
    assert data is None and problem.line is not None and "line" in str(problem)
    assert mv.parse_yaml("- just\n- a list\n")[1].message.startswith("a recipe is a mapping")
    assert mv.parse_yaml("")[1] is not None


def test_skill_targets_spread_a_component_over_the_skills_it_matches():
    recipe = parse_recipe({"name": "r", "total": 100, "components": [
        {"name": "a", "filter": {"skills": ["si_distance", "si_depth_comparison"]}, "weight": 0.5},
        {"name": "b", "filter": {"skills": ["si_distance"]}, "weight": 0.5}]})
    targets = mv.skill_targets(recipe, [{"si_distance": 30, "si_depth_comparison": 10}, {"si_distance": 30}])
    assert targets == {"si_distance": 87.5, "si_depth_comparison": 12.5}
    rows = mv.skill_share_rows(targets, {"si_distance": 60, "si_depth_comparison": 20})
    assert rows[0] == {"skill": "si_distance", "target rows": 88, "selected rows": 60, "target %": 87.5,
                       "selected %": 75.0}


def test_past_exports_are_folders_with_a_manifest_newest_first(tmp_path):
    for name, when in (("a/vst-sft", "2026-01-01T10:00:00+00:00"), ("b/llava", "2026-02-01T10:00:00+00:00")):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "manifest.json").write_text(json.dumps({
            "format": name.split("/")[1], "created_at": when, "recipe": {"name": name.split("/")[0]},
            "selection": {"rows": 3, "excluded": {"total": 1}}, "written": {"rows": 3},
            "files": [{"path": "data.jsonl", "bytes": 10, "sha256": "x"}]}))
    (tmp_path / "c/verl.partial").mkdir(parents=True)
    (tmp_path / "c/verl.partial/manifest.json").write_text("{}")
    (tmp_path / "d").mkdir()
    (tmp_path / "d/manifest.json").write_text("{not json")
    found, problems = mv.past_exports(tmp_path)
    assert [(e.recipe, e.format, e.rows, e.excluded) for e in found] == [("b", "llava", 3, 1), ("a", "vst-sft", 3, 1)]
    assert len(problems) == 1 and "d/manifest.json" in problems[0]
    assert mv.past_export_rows(found, tmp_path)[0]["folder"] == "b/llava"


def test_a_mixture_larger_than_the_catalog_is_a_message_and_the_page_keeps_counts_not_rows(settings):
    """The page computes selections inside the shared server: a recipe asking for 200M up-sampled rows is refused with
    the numbers (it used to grow to 5.9 GB), and what a session keeps between reruns is the counts, not the rows."""
    at = app_at(MIXTURES)
    set_yaml(at, "name: huge\ntotal: 200000000\ncomponents:\n  - {name: all, filter: {}, weight: 1.0, upsample: true, "
                 "max_repeat: 1000000000}\n")
    assert not at.exception
    (error,) = [e for e in shown(at, "error") if "cannot be computed" in e]
    assert "recipe 'huge' would write 200,000,000 rows" in error and "at most 600 rows" in error  # 2 x 300 samples
    set_yaml(at, "name: whole\ncomponents:\n  - {name: all, filter: {}, fraction: 1.0}\n")
    assert not at.exception and {m.label: m.value for m in at.metric}["Rows selected"] != "0"
    _, held = at.session_state["mix_selection"]
    assert held.rows > 0 and held.table.num_rows == 0  # the counts, not a copy of the rows per browser session


def test_skill_targets_of_a_component_naming_skills_stay_on_those_skills():
    # The page counts each component's pool by facets, which leave the filter's own skills aside: every skill the
    # catalog holds comes back, and the recipe's own skills must not share their target with the others.
    recipe = parse_recipe({"name": "r", "total": 100, "components": [
        {"name": "rel", "filter": {"skills": ["mi_object_object_relation"]}, "count": 100}]})
    facets = {"si_3d_detection": 900, "si_distance": 300, "mi_object_object_relation": 30}
    assert mv.skill_targets(recipe, [facets]) == {"mi_object_object_relation": 100.0}
    rows = mv.skill_share_rows(mv.skill_targets(recipe, [facets]), {"mi_object_object_relation": 30})
    assert [r["skill"] for r in rows] == ["mi_object_object_relation"]  # nothing the recipe neither asks nor gets


def test_the_target_vs_selected_chart_shows_the_recipes_own_skills(settings):
    own = ["mi_object_object_relation", "video_object_counting", "cot_sr_camera_camera"]
    at = app_at(MIXTURES)
    set_yaml(at, "name: own-skills\nseed: 1\ntotal: 30\ncomponents:\n"
             + "".join(f"  - {{name: c{i}, filter: {{skills: [{s}]}}, weight: {w}}}\n"
                       for i, (s, w) in enumerate(zip(own, (0.5, 0.3, 0.2)))))
    assert not at.exception and not at.error
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    chart = next(s for s in specs if "per skill" in s["layout"]["title"]["text"])
    shown_skills = set(chart["data"][0]["y"])
    assert shown_skills == set(own), shown_skills  # no "(other N)" bar hiding them
    target = dict(zip(chart["data"][0]["y"], chart["data"][0]["x"]))
    assert target == {"mi_object_object_relation": 50.0, "video_object_counting": 30.0, "cot_sr_camera_camera": 20.0}


@pytest.mark.browser
def test_skill_chips_of_a_component_show_their_whole_label(app_server):
    """In Chromium: a component made from a Browse link with long skill names shows each chip's label in full."""
    from playwright.sync_api import expect, sync_playwright

    from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, WAIT_MS, button, shot, wait_idle

    url, _ = app_server
    skills = ["mi_object_object_relation", "video_object_object_relation", "cot_sr_camera_camera"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(f"{url}/Mixtures?skills={','.join(skills)}")
            expect(button(page, "mix_add_link")).to_be_visible(timeout=WAIT_MS)
            button(page, "mix_add_link").click()
            wait_idle(page)
            chips = page.locator('[class*="_c1_skills"] [data-tag]')
            expect(chips).to_have_count(len(skills), timeout=WAIT_MS)
            shot(page, "mixtures-skill-chips")
            # A label is cut off when some element inside the chip is narrower than its text.
            # ... or when it lies outside the box of chips (scrolled out of sight).
            cut = chips.evaluate_all("""tags => tags.map(t => ({text: t.innerText,
                cut: [t, ...t.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1)
                     || t.getBoundingClientRect().right > t.closest('[data-testid="stMultiSelectTagsContainer"]')
                                                           .getBoundingClientRect().right + 1}))""")
        finally:
            browser.close()
    assert [c["text"] for c in cut if c["cut"]] == [], cut
    assert all(any(s in c["text"] for c in cut) for s in skills), cut
