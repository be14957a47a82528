"""Label Studio: is the server there, push the Browse filter (or the flagged set) as review tasks, see what each
project holds, pull the verdicts back or import an exported file."""


import streamlit as st

from app.components import data, filters, identity
from app.components.page_icon import PAGE_ICON
from app.components.text import code, plain
from curation.labelstudio.client import LabelStudioError
from curation.labelstudio.pull import ExportFileError, PullReport, pull
from curation.labelstudio.push import DEFAULT_PROJECT, PushReport, push
from curation.presenters import labelstudio as overview
from curation.query.filters import FilterSpec, spec_from_link
from curation.query.severity import SEVERITIES
from curation.review.actors import Actor
from curation.review.roles import PermissionDenied, allowed
from curation.settings import Settings

BROWSE_PAGE = "pages/1_Browse.py"
BROWSE_SESSION_SPEC = "browse_spec"  # where Browse keeps the filter of the rows it shows (pages/1_Browse.py)
LAST_PUSH = "ls_last_push"
LAST_PULL = "ls_last_pull"
WHAT_FILTER, WHAT_FLAGGED = "filter", "flagged"


def server_section(s: Settings) -> overview.ServerStatus:
    st.subheader("Server")
    status = overview.server_status(s)
    if status.up:
        c = st.columns([4, 1], vertical_alignment="center")
        c[0].success(plain(status.message), icon=":material/check_circle:")
        c[1].link_button("Open Label Studio", status.url, icon=":material/open_in_new:")
        return status
    st.error(plain(status.message), icon=":material/cloud_off:")
    if status.state == "refused":
        st.info("The server answers but does not accept the token. With the local server, remove LABEL_STUDIO_TOKEN "
                "and the page uses the token `make labelstudio` wrote under the data home; otherwise copy a token from "
                "Account & Settings in Label Studio into LABEL_STUDIO_TOKEN.")
    else:
        st.info(f"Start the local server in a terminal with `{overview.START_COMMAND}` (the first start takes about "
                f"half a minute), then reload this page. It listens on {code(status.url)} (setting `labelstudio_url` "
                "or LABEL_STUDIO_URL). Pushing and pulling need it; importing an export file below does not.")
    return status


def projects_section(b: data.Backend, status: overview.ServerStatus, can_push: bool) -> list[overview.ProjectRow]:
    st.subheader("Projects")
    rows = overview.project_rows(b.state, status.url, list(status.projects) if status.up else None)
    if not rows:
        first = "push samples below and" if can_push else "once a curator pushes samples,"
        st.info(f"No project yet: {first} one project per sample kind (single image, multi-image, video frames, "
                "reasoning, text) appears here with its task, annotated and pulled counts.")
        return rows
    if not status.up:
        st.caption("The server is not reached: task and annotated counts are unknown; links and pulls come from the "
                   "state database.")
    st.dataframe([r.as_table_row() for r in rows], hide_index=True, key="ls_projects_table",
                 column_config={"open in Label Studio": st.column_config.LinkColumn(display_text="open tasks"),
                                "project": st.column_config.TextColumn(width="medium")})
    st.plotly_chart(overview.projects_figure(rows), key="ls_projects_chart")
    gone = [r.title for r in rows if r.on_server is False]
    if gone:
        st.warning(f"Gone from the server (deleted in Label Studio?): {plain(', '.join(gone))}. Their links are kept; "
                   "pushing the same samples again creates the project anew.")
    notes = []
    if status.up and (others := overview.other_projects(status.projects, rows)):
        notes.append(f"{others} other project(s) on the server were not pushed from this data home.")
    if from_files := overview.file_imports(b.state):
        notes.append(f"{from_files} sample(s) have a review imported from an export file.")
    if notes:
        st.caption(" ".join(notes))
    return rows


def last_browse_spec() -> FilterSpec | None:
    """The filter Browse showed last in this browser session (the sidebar's page links drop the query string)."""
    raw = st.session_state.get(BROWSE_SESSION_SPEC)
    try:
        spec = FilterSpec.model_validate_json(raw) if raw else None
    except ValueError:
        return None
    return None if spec is None or spec.is_empty() else spec


def filter_source(spec: FilterSpec) -> None:
    """Where the filter comes from, and ways to bring one over when the link has none."""
    browse = filters.url_params(spec)
    st.page_link(BROWSE_PAGE, label="Change the filter in Browse", icon=":material/search:", query_params=browse)
    if spec.is_empty() and (last := last_browse_spec()):
        c = st.columns([4, 1], vertical_alignment="center")
        c[0].info(f"This page's link has no filter; Browse showed {filters.describe(last)} last.")
        if c[1].button("Use that filter", key="ls_browse_btn"):
            filters.write_url(last)
            st.rerun()
    with st.expander("Paste a Browse link", expanded=spec.is_empty() and last_browse_spec() is None):
        st.caption("The filter travels in the address: copy the address of the Browse page after filtering and "
                   "paste it here (or open this page with the same `?…` query string).")
        link = st.text_input("Browse link or query string", key="ls_link",
                             placeholder="http://127.0.0.1:8501/Browse?skills=si_distance&flagged=1")
        if st.button("Use this filter", key="ls_link_btn", disabled=not link.strip()):
            try:
                filters.write_url(spec_from_link(link))
            except ValueError as exc:
                st.error(plain(exc))
            else:
                st.rerun()


def push_section(b: data.Backend, status: overview.ServerStatus, actor: Actor) -> None:
    st.subheader("Push samples for review")
    if not allowed(actor, "ls_push"):
        st.caption(f"Your role ({actor.role}) may see the projects here, not push samples to Label Studio: that needs "
                   "a curator or an admin.")
        return
    spec = filters.spec_from_url()
    flagged = FilterSpec(flagged=True)
    try:
        n_filter = data.count(b, spec)
        n_flagged = data.count(b, flagged)
    except Exception as exc:  # e.g. a text search without a text index
        st.error(f"The filter cannot be applied: {plain(exc)}")
        return
    st.markdown(f"**{n_filter:,}** samples match the Browse filter · {filters.describe(spec)}")
    filter_source(spec)
    # Counts go into the captions: a radio whose option labels change between runs loses its selection in the browser.
    labels = {WHAT_FILTER: "The Browse filter", WHAT_FLAGGED: "The flagged set"}
    what = st.radio("What to push", list(labels), format_func=labels.get, key="ls_push_what", horizontal=True,
                    captions=[f"{n_filter:,} samples", f"{n_flagged:,} samples, every filter aside"])
    chosen, n = (spec, n_filter) if what == WHAT_FILTER else (flagged, n_flagged)
    severities = st.multiselect(
        "Only samples with a failure of severity", list(SEVERITIES), default=None, key="ls_push_severity",
        placeholder="any sample (no severity filter)",
        help="error breaks training, warning is a quality doubt, info a known quirk the catalog normalised. Each task "
             "carries its worst severity and its failures, columns to filter and sort by in Label Studio.")
    if severities:
        chosen = chosen.model_copy(update={"failed_severities": severities})
        try:
            n = data.count(b, chosen)
        except Exception as exc:
            st.error(f"The filter cannot be applied: {plain(exc)}")
            return
        st.caption(f"{n:,} of them have a failure of severity {', '.join(severities)}.")
    c = st.columns([3, 1, 2])
    project = c[0].text_input("Project name (one project per sample kind: '<name> · single image', ...)",
                              value=DEFAULT_PROJECT, key="ls_project", max_chars=overview.MAX_PROJECT_NAME)
    limit = c[1].number_input("Limit", min_value=1, value=None, step=100, placeholder="no limit", key="ls_limit",
                              help="At most this many samples, in sample_id order")
    predictions = c[2].checkbox("Attach check results as predictions", value=True, key="ls_predictions",
                                help="Annotators see the verdict the failed checks suggest and can accept it")
    n_push = min(n, int(limit)) if limit else n
    whole = chosen.is_empty() and not limit
    sure = st.checkbox(f"Yes, push the whole catalog ({n:,} samples)", key="ls_push_all") if whole else True
    blocker = None
    if not status.up:
        blocker = "Start Label Studio first (see Server above)."
    elif n == 0:
        blocker = ("No sample is flagged yet: flag samples on the Sample page, or push the Browse filter."
                   if what == WHAT_FLAGGED else "No sample matches this filter: loosen it in Browse.")
    elif not project.strip():
        blocker = "Give the project a name."
    if blocker:
        st.info(blocker)
    clicked = st.button(f"Push {n_push:,} sample(s) to Label Studio", key="ls_push_btn", type="primary",
                        disabled=bool(blocker) or not sure)
    if clicked:
        run_push(b, chosen, project.strip(), int(limit) if limit else None, predictions, n_push, actor)


def run_push(b: data.Backend, spec: FilterSpec, project: str, limit: int | None, predictions: bool, n: int,
             actor: Actor) -> None:
    bar = st.progress(0.0, text=f"Pushing {n:,} sample(s) …")

    def progress(done: int, total: int) -> None:
        bar.progress(min(done / total, 1.0) if total else 1.0, text=f"Pushed {done:,} of {total:,} sample(s)")

    try:
        report = push(b.settings, spec, by=actor, project=project, limit=limit, predictions=predictions,
                      state_db=b.state, progress=progress)
    except PermissionDenied as exc:
        bar.empty()
        st.error(plain(exc))
        return
    except LabelStudioError as exc:
        bar.empty()
        st.error(f"The push stopped: {plain(exc)}")
        return
    except Exception as exc:  # a catalog or state database problem: a message, never a traceback
        bar.empty()
        st.error(f"The push failed: {type(exc).__name__}: {plain(exc)}")
        return
    st.session_state[LAST_PUSH] = report
    st.rerun()  # so the projects table above shows the new counts


def show_push(report: PushReport, url: str) -> None:
    if report.samples == 0:
        st.info("The last push found no sample to send.")
        return
    first = report.lines()[0]
    (st.success if report.new_tasks else st.info)(plain(first[0].upper() + first[1:]), icon=":material/upload:")
    st.dataframe(overview.push_rows(report, url), hide_index=True, key="ls_push_table",
                 column_config={"open in Label Studio": st.column_config.LinkColumn(display_text="open tasks")})


def pull_section(b: data.Backend, status: overview.ServerStatus, rows: list[overview.ProjectRow], actor: Actor
                 ) -> None:
    st.subheader("Pull verdicts back")
    if not allowed(actor, "ls_pull"):
        st.caption(f"Your role ({actor.role}) may not pull verdicts from Label Studio or import an export file: that "
                   "needs a curator or an admin.")
        return
    st.caption("Each annotation becomes a review (correct → approve, a corrected answer → fix, any other label → "
               "reject plus a flag with that reason). Pulling again adds nothing; when a local review is newer and "
               "says something else, it stays and the conflict is listed.")
    live = [r.project_id for r in rows if r.on_server is not False]
    blocker = None
    if not status.up:
        blocker = "Start Label Studio to pull from it, or import an export file below."
    elif not live:
        blocker = "Nothing to pull yet: push samples first (pull reads the projects pushed from this data home)."
    if blocker:
        st.info(blocker)
    label = f"Pull from {len(live)} project(s)" if live else "Pull from Label Studio"
    if st.button(label, key="ls_pull_btn", type="primary", disabled=bool(blocker)):
        with st.spinner("Exporting the projects from Label Studio and importing the annotations …"):
            try:
                report = pull(b.settings, live, by=actor, state_db=b.state)
            except PermissionDenied as exc:
                st.error(plain(exc))
                report = None
            except LabelStudioError as exc:
                st.error(f"The pull stopped before writing anything: {plain(exc)}")
                report = None
            except Exception as exc:
                st.error(f"The pull failed: {type(exc).__name__}: {plain(exc)}")
                report = None
        if report is not None:
            st.session_state[LAST_PULL] = ("Label Studio", report)
            st.rerun()

    with st.expander("Import a Label Studio JSON export file", expanded=not status.up):
        st.caption("In Label Studio: project → Export → JSON. Tasks are matched by `data.sample_id`.")
        upload = st.file_uploader("Export file", type=["json"], key="ls_upload")
        if st.button("Import this export", key="ls_import_btn", disabled=upload is None):
            try:
                report = overview.import_export_bytes(b.settings, upload.name, upload.getvalue(), by=actor,
                                                      state_db=b.state)
            except (PermissionDenied, ExportFileError) as exc:
                st.error(plain(exc))
            except Exception as exc:
                st.error(f"The import of {plain(upload.name)} failed: {type(exc).__name__}: {plain(exc)}")
            else:
                st.session_state[LAST_PULL] = (upload.name, report)
                st.rerun()


def show_pull(source: str, report: PullReport) -> None:
    numbers = overview.pull_numbers(report)
    st.markdown(f"**Last pull** from {plain(source)} · {report.seconds:.1f} s")
    first, second = list(numbers.items())[:5], list(numbers.items())[5:]
    for part in (first, second):
        cols = st.columns(len(part))
        for col, (label, value) in zip(cols, part, strict=True):
            col.metric(label, f"{value:,}")
    if report.parsed.counts["tasks"] == 0:
        st.info("The export holds no task.")
    elif numbers["annotations"] == 0 and not report.parsed.skipped:
        st.info("No task is annotated yet: annotate in Label Studio, then pull again.")
    if report.conflicts:
        st.warning(f"{len(report.conflicts)} conflict(s) with existing reviews (the newer decision wins):")
        st.dataframe(overview.conflict_rows(report), hide_index=True, key="ls_conflicts_table")
    if report.parsed.skipped:
        st.warning(f"{len(report.parsed.skipped)} task(s) or annotation(s) were not imported:")
        st.dataframe(overview.skipped_rows(report), hide_index=True, key="ls_skipped_table",
                     column_config={"details": st.column_config.TextColumn(width="large")})


def main() -> None:
    st.set_page_config(page_title="VST Curator · Label Studio", page_icon=PAGE_ICON, layout="wide")
    actor = identity.signed_in()  # the page stops here until someone is signed in (when sign-in is configured)
    st.title("Label Studio")
    st.caption("Send samples to annotators in Label Studio and bring their verdicts back as reviews.")
    s = data.settings()
    status = server_section(s)
    try:
        b = data.backend()
    except data.AppDataError as exc:
        st.error(plain(exc))
        return
    try:
        rows = projects_section(b, status, allowed(actor, "ls_push"))
    except Exception as exc:  # the state database is unreachable
        st.error(f"The pushed projects cannot be read from the state database: {plain(exc)}")
        return
    push_section(b, status, actor)
    if isinstance(report := st.session_state.get(LAST_PUSH), PushReport):
        show_push(report, status.url)
    pull_section(b, status, rows, actor)
    if last := st.session_state.get(LAST_PULL):
        show_pull(*last)


main()
