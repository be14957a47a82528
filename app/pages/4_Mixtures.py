"""Mixtures: write a recipe in a form or as YAML (kept in sync), see what it selects per component, per skill and
what it leaves out, export it in training formats, and look through past exports."""

import copy
from pathlib import Path

import streamlit as st

from app.components import data, filters, identity
from app.components.page_icon import PAGE_ICON
from app.components.text import code, plain
from curation.mixtures.export import export_mixture
from curation.mixtures.recipe import Recipe
from curation.mixtures.selection import Selection, select_mixture
from curation.presenters import mixtures as mv
from curation.query.filters import FilterSpec
from curation.query.results import checks_with_results
from curation.review.actors import Actor
from curation.review.roles import PermissionDenied, allowed

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "recipes"
DATA, YAML, PROBLEM, GEN = "mix_data", "mix_yaml", "mix_yaml_problem", "mix_gen"
SELECTION, LAST_EXPORT = "mix_selection", "mix_last_export"
DIMENSION_LABELS = {"skills": "Skills", "groups": "Groups", "sources": "Sources", "datasets": "Datasets"}


# --- recipe state: the mapping in DATA is the truth; the form and the YAML text are two views of it ------------


def set_recipe(recipe_data: dict, text: str | None = None) -> None:
    """Replace the recipe from outside the form: the YAML shows ``text`` (or the mapping dumped) and the form is
    drawn afresh (its widget keys carry a generation number)."""
    ss = st.session_state
    ss[DATA] = recipe_data
    ss[YAML] = text if text is not None else mv.recipe_yaml(recipe_data)
    ss[PROBLEM] = None
    ss[GEN] = ss.get(GEN, 0) + 1


def init_state() -> None:
    if DATA not in st.session_state:
        set_recipe(copy.deepcopy(mv.STARTER_RECIPE))


def _key(name: str, i: int | None = None) -> str:
    gen = st.session_state[GEN]
    return f"mix_f{gen}_{name}" if i is None else f"mix_f{gen}_c{i}_{name}"


def form_values() -> mv.RecipeForm:
    """The form as the widgets hold it now (values not drawn yet come from the recipe)."""
    ss = st.session_state
    form = mv.form_from_data(ss[DATA])

    for name in ("name", "total", "seed", "flagged", "rejected", "failed_checks", "near_duplicates",
                 "exact_duplicates", "apply_fixes", "reasoning_failures", "formats"):
        setattr(form, name, ss.get(_key(name), getattr(form, name)))
    for i, comp in enumerate(form.components):
        comp.name = ss.get(_key("name", i), comp.name)
        for dim in mv.FORM_DIMENSIONS:
            setattr(comp, dim, list(ss.get(_key(dim, i), getattr(comp, dim))))
        mode = ss.get(_key("mode", i), comp.size_mode)
        if mode != comp.size_mode:  # switched: start the new kind of size from its default
            comp.size_mode, comp.size = mode, mv.default_size(mode, len(form.components))
        size = ss.get(_key(f"size_{mode}", i), comp.size)
        comp.size = comp.size if size is None else size
    return form


def on_form_change() -> None:
    ss = st.session_state
    ss[DATA] = mv.data_from_form(form_values(), ss[DATA])
    ss[YAML] = mv.recipe_yaml(ss[DATA])
    ss[PROBLEM] = None


def on_yaml_change() -> None:
    ss = st.session_state
    parsed, problem = mv.parse_yaml(ss[YAML])
    ss[PROBLEM] = problem
    if parsed is not None:
        ss[DATA] = parsed
        ss[GEN] = ss.get(GEN, 0) + 1  # the form is drawn again from the new mapping


def on_add_component() -> None:
    on_form_change()
    set_recipe(mv.add_component(st.session_state[DATA]))


def on_remove_component(index: int) -> None:
    on_form_change()
    set_recipe(mv.remove_component(st.session_state[DATA], index))


def on_load_example() -> None:
    path = mv.example_recipes(EXAMPLES_DIR).get(st.session_state.get("mix_example"))
    if path is None:
        return
    text = path.read_text(encoding="utf-8")
    parsed, problem = mv.parse_yaml(text)
    set_recipe(parsed or {}, text)
    st.session_state[PROBLEM] = problem


def on_add_link_filter(spec_json: str) -> None:
    on_form_change()
    set_recipe(mv.component_from_spec(st.session_state[DATA], FilterSpec.model_validate_json(spec_json)))


# --- drawing ------------------------------------------------------------------------------------------------


def start_section(spec: FilterSpec) -> None:
    examples = mv.example_recipes(EXAMPLES_DIR)
    c = st.columns([3, 1, 1], vertical_alignment="bottom")
    if examples:
        c[0].selectbox("Start from an example recipe", list(examples), key="mix_example")
        c[1].button("Load example", key="mix_load_example", on_click=on_load_example, icon=":material/upload_file:")
    else:
        c[0].caption(f"No example recipes under {code(EXAMPLES_DIR)}.")
    c[2].button("Blank recipe", key="mix_blank", on_click=set_recipe, args=(copy.deepcopy(mv.STARTER_RECIPE),),
                icon=":material/note_add:")
    if not spec.is_empty():
        c = st.columns([4, 1], vertical_alignment="center")
        c[0].info(f"The link carries a Browse filter: {filters.describe(spec)}.")
        c[1].button("Add it as a component", key="mix_add_link", on_click=on_add_link_filter,
                    args=(spec.model_dump_json(),))


def component_form(i: int, comp: mv.ComponentForm, values: dict[str, dict[str, int]], n: int) -> None:
    with st.container(border=True):
        c = st.columns([3, 2, 2, 1], vertical_alignment="bottom")
        c[0].text_input("Component name", comp.name, key=_key("name", i), on_change=on_form_change)
        mode = c[1].selectbox("Size as", mv.SIZE_MODES, index=mv.SIZE_MODES.index(comp.size_mode),
                              key=_key("mode", i), on_change=on_form_change,
                              help="weight: share of the total · count: exact rows · fraction: share of the "
                                   "pool (stable when rows are added)")
        if mode == "count":
            c[2].number_input("Rows", min_value=0, value=int(comp.size), step=10, key=_key("size_count", i),
                              on_change=on_form_change)
        else:
            c[2].number_input("Weight" if mode == "weight" else "Fraction of the pool", min_value=0.0,
                              max_value=1.0, value=min(max(float(comp.size), 0.0), 1.0), step=0.05, format="%.3f",
                              key=_key(f"size_{mode}", i), on_change=on_form_change)
        c[3].button("Remove", key=_key("remove", i), on_click=on_remove_component, args=(i,), disabled=n == 1,
                    icon=":material/delete:")
        # Skills get a row of their own: their ids are long (mi_object_object_relation), and chips in a narrow
        # column are cut off. Chips wrap onto more rows rather than scroll out of sight.
        others = [d for d in mv.FORM_DIMENSIONS if d != "skills"]
        for col, dim in zip([st.container(), *st.columns(len(others))], ["skills", *others]):
            counts = values.get(dim, {})
            chosen = getattr(comp, dim)
            col.multiselect(DIMENSION_LABELS[dim], mv.options_with(list(counts), chosen), default=chosen,
                            key=_key(dim, i), on_change=on_form_change, placeholder="any", wrap=True,
                            format_func=lambda v, c=counts: f"{v} ({c[v]:,})" if v in c else f"{v} (not in catalog)")


def recipe_form(b: data.Backend, values: dict[str, dict[str, int]]) -> None:
    form = mv.form_from_data(st.session_state[DATA])
    c = st.columns([3, 2, 2])
    c[0].text_input("Recipe name", form.name, key=_key("name"), on_change=on_form_change,
                    help="Letters, digits, '.', '_' or '-': it names the export folder.")
    c[1].number_input("Total rows", min_value=0, value=form.total, step=100, key=_key("total"),
                      on_change=on_form_change, placeholder="none (counts / fractions only)",
                      help="Weighted components share this total.")
    c[2].number_input("Seed", value=form.seed, step=1, key=_key("seed"), on_change=on_form_change,
                      help="Same seed + same catalog = the same rows.")
    st.markdown("**Components**")
    if not form.components:
        st.info("No component yet: add one below (a filter plus a weight, a count or a fraction).")
    for i, comp in enumerate(form.components):
        component_form(i, comp, values, len(form.components))
    st.button("Add component", key=_key("add"), on_click=on_add_component, icon=":material/add:")

    st.markdown("**Leave out**")
    c = st.columns(4)
    c[0].checkbox("Flagged samples", form.flagged, key=_key("flagged"), on_change=on_form_change)
    c[1].checkbox("Rejected in review", form.rejected, key=_key("rejected"), on_change=on_form_change)
    c[2].checkbox("Near duplicates (keep one)", form.near_duplicates, key=_key("near_duplicates"),
                  on_change=on_form_change)
    c[3].checkbox("Exact duplicates (keep one)", form.exact_duplicates, key=_key("exact_duplicates"),
                  on_change=on_form_change)
    try:
        checks = checks_with_results(b.settings.results_dir)
    except Exception as exc:  # unreadable result files: say so, keep the form usable
        st.warning(f"Check results cannot be read: {plain(exc)}")
        checks = []
    st.multiselect("Samples that failed these checks", mv.options_with(checks, form.failed_checks),
                   default=form.failed_checks, key=_key("failed_checks"), on_change=on_form_change,
                   accept_new_options=True, placeholder="type a check name or a family like format.*")
    if not checks:
        st.caption("No check has results yet: run checks (`python -m curation check ...`) to leave out what fails "
                   "them. Names typed here exclude nothing until their check has run.")

    st.markdown("**Fixes, reasoning and formats**")
    c = st.columns([1, 1, 2])
    c[0].checkbox("Apply reviewed fixes", form.apply_fixes, key=_key("apply_fixes"), on_change=on_form_change,
                  help="Reviewed fixes replace the answer / reasoning in the exported turns.")
    c[1].selectbox("Reasoning that fails a check", mv.REASONING_POLICIES,
                   index=mv.REASONING_POLICIES.index(form.reasoning_failures), key=_key("reasoning_failures"),
                   on_change=on_form_change,
                   help="When the trace fails a reasoning check but the answer is right: keep it, drop the "
                        "sample, or downgrade it to a direct answer (trace removed).")
    c[2].multiselect("Formats", list(mv.FORMAT_NAMES), default=[f for f in form.formats if f in mv.FORMAT_NAMES],
                     key=_key("formats"), on_change=on_form_change, wrap=True)


def yaml_editor() -> None:
    problem = st.session_state.get(PROBLEM)
    if problem is not None:
        st.error(plain(problem), icon=":material/error:")
        st.caption("The form and the counts show the last recipe that parsed.")
    st.text_area("Recipe YAML", key=YAML, height=460, on_change=on_yaml_change,
                 help="Press Ctrl+Enter (or click outside) to apply. Keys: see examples/recipes/.")
    name = st.session_state[DATA].get("name") or "recipe"
    st.download_button("Download recipe", st.session_state[YAML], file_name=f"{name}.yaml", mime="application/x-yaml",
                       key="mix_download", icon=":material/download:")


def current_selection(b: data.Backend, recipe: Recipe) -> Selection:
    """The recipe's selection counts (not its rows), kept for this recipe and catalog version until the curator
    recounts (the state and check results it reads may change meanwhile)."""
    ss = st.session_state
    key = f"{b.query.version()}|{recipe.model_dump_json()}"
    held = ss.get(SELECTION)
    if held is None or held[0] != key:
        with st.spinner("Counting what the recipe selects…"):
            held = (key, select_mixture(recipe, b.query, b.state).without_rows())
        ss[SELECTION] = held
    return held[1]


def counts_section(b: data.Backend, recipe: Recipe) -> Selection | None:
    c = st.columns([5, 1], vertical_alignment="bottom")
    c[0].subheader("What it selects")
    if c[1].button("Recount", key="mix_recount", icon=":material/refresh:",
                   help="Read flags, reviews and check results again."):
        st.session_state.pop(SELECTION, None)
    try:
        sel = current_selection(b, recipe)
    except Exception as exc:  # a catalog error, an unreadable state database: a message
        st.error(f"The selection cannot be computed: {plain(exc)}")
        return None
    m = st.columns(4)
    m[0].metric("Rows selected", f"{sel.rows:,}")
    asked = sum(c.asked or 0 for c in sel.components)
    m[1].metric("Rows asked", f"{asked:,}" if asked else "—")
    m[2].metric("Samples excluded", f"{sel.excluded_total:,}")
    short = sum(c.shortfall for c in sel.components)
    m[3].metric("Shortfall", f"{short:,}", delta=f"-{short:,}" if short else None, delta_color="normal")
    for line in sel.shortfalls():
        st.warning(plain(line), icon=":material/warning:")
    for line in sel.warnings:
        st.caption(f"⚠ {plain(line)}")
    if not sel.rows:
        st.info("The recipe selects nothing: its filters match no row of the catalog, or every match is excluded. "
                "Loosen a component's filter or the exclusions.")
    st.dataframe(mv.component_rows(sel), hide_index=True, key="mix_components_table")
    c = st.columns(2)
    c[0].plotly_chart(mv.components_figure(sel), key="mix_components_chart")
    try:
        pools = [data.facets(b, comp.filter, ["skills"]).get("skills", {}) for comp in recipe.components]
        shares = mv.skill_share_rows(mv.skill_targets(recipe, pools), sel.counts.get("by_skill", {}))
    except Exception as exc:
        st.warning(f"Skill shares cannot be computed: {plain(exc)}")
        shares = []
    if shares:
        c[1].plotly_chart(mv.skills_figure(shares), key="mix_skills_chart")
    if sel.excluded:
        c = st.columns(2)
        c[0].plotly_chart(mv.exclusions_figure(sel.excluded), key="mix_exclusions_chart")
        c[1].dataframe([{"reason": r, "samples": n} for r, n in sel.excluded.items()], hide_index=True,
                       key="mix_exclusions_table")
    else:
        st.caption("No candidate is excluded by the recipe's exclusions.")
    if sel.left_out:
        st.caption(f"{len(sel.left_out):,} sample(s) are left out because their media cannot be read.")
    if errors := mv.error_exclusions(sel.excluded):
        st.caption(f"Left out as broken for training (a failure of `error` severity): "
                   f"{plain(', '.join(f'{check} {n:,}' for check, n in errors.items()))}. To keep them, set "
                   "`include_error_rows: true` in the YAML (rows whose placeholders do not match are then repaired).")
    return sel


def export_section(b: data.Backend, recipe: Recipe, actor: Actor) -> None:
    st.subheader("Export")
    if not allowed(actor, "export"):
        st.caption(f"Your role ({actor.role}) may write recipes and see what they select here, not export them: that "
                   "needs a curator or an admin.")
        return
    default_dir = Path(b.settings.exports_dir) / recipe.name
    c = st.columns([2, 3])
    formats = c[0].multiselect("Formats", list(mv.FORMAT_NAMES), default=recipe.formats,
                               key=f"mix_exp_formats_{recipe.name}_{'-'.join(recipe.formats)}")
    folder = c[1].text_input("Output folder", str(default_dir), key=f"mix_exp_dir_{recipe.name}",
                             help="Each format goes into <folder>/<format>.")
    c = st.columns([1, 1, 2])
    force = c[0].checkbox("Replace an existing export", key="mix_exp_force")
    media = c[1].checkbox("Write media files", value=True, key="mix_exp_media",
                          help="Off: records point at media files that are not copied (a quick text-only look).")
    if c[2].button("Export", key="mix_export", type="primary", disabled=not formats or not folder.strip(),
                   icon=":material/output:"):
        run_export(b, recipe, formats, Path(folder.strip()).expanduser(), force, media, actor)
    if not formats:
        st.caption("Pick at least one format to export.")
    last = st.session_state.get(LAST_EXPORT)
    if last:
        export_summary(last)


def run_export(b: data.Backend, recipe: Recipe, formats: list[str], folder: Path, force: bool, media: bool,
               actor: Actor) -> None:
    """Select once, write each format in turn; export_mixture only takes progress=True for a terminal bar, so the
    page shows one step per format."""
    targets = {f: folder / f for f in formats}
    busy = [str(t) for t in targets.values() if t.exists() and any(t.iterdir())]
    if busy and not force:
        st.error(f"Already exported here: {plain(', '.join(busy))}. Tick 'Replace an existing export' or choose "
                 "another folder.")
        return
    outcomes = []
    with st.status(f"Exporting {recipe.name}…", expanded=True) as status:
        bar = st.progress(0.0, text="selecting rows")
        try:
            st.write("Selecting rows…")
            sel = select_mixture(recipe, b.query, b.state)
            st.write(f"Selected {sel.rows:,} rows.")
            for k, (fmt, target) in enumerate(targets.items()):
                bar.progress(k / len(targets), text=f"writing {fmt} ({k + 1} of {len(targets)})")
                st.write(f"Writing **{plain(fmt)}** to {code(target)}…")
                outcomes += export_mixture(recipe, b.settings, [fmt], target, by=actor, force=force,
                                           write_media=media, state_db=b.state, selection=sel)
            bar.progress(1.0, text="done")
            status.update(label=f"Exported {recipe.name}: {', '.join(formats)}", state="complete", expanded=False)
        except PermissionDenied as exc:
            status.update(label="The export was refused", state="error", expanded=True)
            st.error(plain(exc))
        except Exception as exc:  # an existing folder, a broken shard, a full disk: a message, never a traceback
            status.update(label="The export failed", state="error", expanded=True)
            st.error(f"The export failed: {plain(exc)}")
    st.session_state[LAST_EXPORT] = [
        {"format": o.format, "folder": str(o.out_dir), "rows": o.rows, "left_out": o.left_out,
         "files": o.manifest.get("files", [])} for o in outcomes]


def export_summary(last: list[dict]) -> None:
    st.success("Written: " + " · ".join(f"{plain(o['format'])} ({o['rows']:,} rows)" for o in last),
               icon=":material/task_alt:")
    for o in last:
        if o["left_out"]:
            st.warning(f"{plain(o['format'])}: {o['left_out']:,} sample(s) left out (their media could not be read); "
                       "the manifest lists them.")
        with st.expander(f"{plain(o['format'])} → {plain(o['folder'])} · {len(o['files'])} file(s)",
                         expanded=len(last) == 1):
            st.dataframe([{"file": f["path"], "bytes": f["bytes"], "sha256": f["sha256"][:16] + "…"}
                          for f in o["files"]], hide_index=True, key=f"mix_last_files_{o['format']}")


def past_exports_section(b: data.Backend) -> None:
    st.subheader("Past exports")
    root = Path(b.settings.exports_dir)
    exports, problems = mv.past_exports(root)
    for p in problems:
        st.warning(plain(p))
    if not exports:
        st.info(f"No export yet under {code(root)}. Export a recipe above; each finished export folder holds a "
                "`manifest.json` and is listed here.")
        return
    st.dataframe(mv.past_export_rows(exports, root), hide_index=True, key="mix_past_table")
    for e in exports:
        with st.expander(f"{plain(e.recipe)} · {plain(e.format)} · {plain(e.when)} · {e.rows:,} rows"):
            st.caption(f"{code(e.path)} · {len(e.files)} file(s), {e.bytes / 1e6:.2f} MB · "
                       f"{e.unique_samples:,} unique samples · {e.excluded:,} excluded")
            st.dataframe([{"file": f.get("path"), "bytes": f.get("bytes")} for f in e.files], hide_index=True,
                         key=f"mix_past_files_{e.path}")
            st.json(e.manifest, expanded=1)


def main() -> None:
    st.set_page_config(page_title="VST Curator · Mixtures", page_icon=PAGE_ICON, layout="wide")
    actor = identity.signed_in()  # the page stops here until someone is signed in (when sign-in is configured)
    st.title("Mixtures")
    try:
        b = data.backend()
    except data.AppDataError as exc:
        st.error(plain(exc))
        return
    init_state()
    start_section(filters.spec_from_url())
    try:
        values = data.facets(b, FilterSpec(), list(mv.FORM_DIMENSIONS))
    except Exception as exc:
        st.error(f"The catalog's values cannot be read: {plain(exc)}")
        values = {}
    form_tab, yaml_tab = st.tabs(["Form", "YAML"])
    with form_tab:
        recipe_form(b, values)
    with yaml_tab:
        yaml_editor()

    recipe, problem = mv.validate(st.session_state[DATA])
    if st.session_state.get(PROBLEM) is not None:
        st.warning("The YAML tab has text that does not parse; what follows is for the last recipe that did.")
    if recipe is None:
        st.subheader("What it selects")
        st.error(f"The recipe is not valid yet. {plain(problem)}", icon=":material/error:")
    else:
        counts_section(b, recipe)
        export_section(b, recipe, actor)
    past_exports_section(b)


main()
