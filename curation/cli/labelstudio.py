"""The `ls` commands: push samples to Label Studio, pull annotators' verdicts back, show the server's status."""

from __future__ import annotations

import argparse
import sys

from curation.query.filters import FilterSpec, spec_from_link
from curation.query.severity import SEVERITIES
from curation.review.actors import local_actor
from curation.settings import Settings

# Each command imports the Label Studio modules when it runs: the Label Studio SDK alone takes ~1.4 s to load,
# which every other command of `python -m curation` would pay.


def filter_from_args(args: argparse.Namespace) -> FilterSpec:
    """A FilterSpec from --filter (a Browse link or its query string) plus the shorthand options."""
    spec = spec_from_link(args.filter) if args.filter else FilterSpec()
    update: dict[str, object] = {}
    for name in ("skills", "groups", "datasets", "sample_ids", "failed_checks", "failed_severities", "flag_reasons"):
        values = getattr(args, name, None)
        if values:
            update[name] = [*getattr(spec, name), *values]
    if args.flagged:
        update["flagged"] = True
    if args.text:
        update["text"] = args.text
    return spec.model_copy(update=update) if update else spec


def cmd_push(args: argparse.Namespace, settings: Settings) -> int:
    from curation.labelstudio.client import LabelStudioError
    from curation.labelstudio.push import DEFAULT_PROJECT, push

    spec = filter_from_args(args)
    if spec.is_empty() and not args.all:
        print("error: say what to push: --flagged, --skill, --filter ..., or --all for the whole catalog",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        project = DEFAULT_PROJECT if args.project is None else args.project
        report = push(settings, spec, by=local_actor(), project=project, limit=args.limit,
                      predictions=not args.no_predictions)
    except LabelStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines(settings.labelstudio_url.rstrip("/"))))
    return 0


def cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    from curation.labelstudio.client import LabelStudioError
    from curation.labelstudio.pull import ExportFileError, pull, pull_file

    try:
        if args.file:
            report = pull_file(settings, args.file, by=local_actor(),
                               project_id=args.project_id[0] if args.project_id else None)
        else:
            report = pull(settings, args.project_id or None, by=local_actor())
    except (LabelStudioError, ExportFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Server reachable? whose token? and per recorded project: tasks on the server, annotated, links kept."""
    from curation.labelstudio.client import LabelStudioClient, LabelStudioError
    from curation.labelstudio.links import links_for_project, list_projects
    from db.engine import open_state

    try:
        client = LabelStudioClient.from_settings(settings)
        me = client.whoami()
        version = client.version()
        on_server = {p["id"]: p for p in client.projects()}
    except LabelStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Label Studio {version} at {client.url}: token of {me['email']} ({client.connection.token_source})")
    with open_state(settings.db_url) as db:
        recorded = list_projects(db)
        if not recorded:
            print("no project pushed yet: python -m curation ls push --flagged")
        for p in recorded:
            links = len(links_for_project(db, p.id))
            server = on_server.get(p.id)
            if server is None:
                print(f"  project {p.id} {p.title!r}: gone from the server ({links} links kept)")
                continue
            print(f"  project {p.id} {p.title!r}: {server['task_number']} task(s), {server['annotated']} annotated, "
                  f"{links} linked sample(s)  {client.url}/projects/{p.id}/data")  # fmt: skip
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``ls`` with push / pull / status to the main parser's subcommands."""
    ls = subparsers.add_parser("ls", help="Label Studio round trip: push samples, pull verdicts, status")
    sub = ls.add_subparsers(dest="ls_command", required=True)

    p = sub.add_parser("push", help="push samples (a filter or the flagged set) as review tasks")
    p.add_argument("--flagged", action="store_true", help="the flagged set")
    p.add_argument("--skill", dest="skills", action="append", help="a skill id (repeatable)")
    p.add_argument("--group", dest="groups", action="append", help="single | multi | video | text (repeatable)")
    p.add_argument("--dataset", dest="datasets", action="append")
    p.add_argument("--sample-id", dest="sample_ids", action="append")
    p.add_argument("--failed-check", dest="failed_checks", action="append")
    p.add_argument("--severity", dest="failed_severities", action="append", choices=SEVERITIES,
                   help="samples with a failure of this severity (of the --failed-check ones when named; repeatable)")
    p.add_argument("--flag-reason", dest="flag_reasons", action="append")
    p.add_argument("--text", help="full-text search over question / answer / reasoning")
    p.add_argument("--filter", help="a filter as the app's URL query string, e.g. 'skills=si_distance&flagged=1'")
    p.add_argument("--all", action="store_true", help="push the whole catalog (no filter)")
    p.add_argument("--limit", type=int, help="at most this many samples (in sample_id order)")
    p.add_argument("--project", help="project title prefix (one project per sample kind)")
    p.add_argument("--no-predictions", action="store_true", help="do not attach check results as predictions")
    p.set_defaults(func=cmd_push)

    q = sub.add_parser("pull", help="import annotations as reviews (idempotent)")
    q.add_argument("--project-id", type=int, action="append", help="only this project (repeatable)")
    q.add_argument("--file", help="a Label Studio JSON export file instead of the server")
    q.set_defaults(func=cmd_pull)

    s = sub.add_parser("status", help="server, token and the projects pushed so far")
    s.set_defaults(func=cmd_status)
    return ls
