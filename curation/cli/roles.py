"""The `roles` command: list, grant and revoke roles in the state database (the server's own user acts as admin)."""

from __future__ import annotations

import argparse

from curation.review.actors import local_actor
from curation.review.roles import DEFAULT_ROLE, grant_role, revoke_role, roles
from curation.review.state_db import open_state
from curation.settings import Settings
from db.models import ROLES


def cmd_roles(args: argparse.Namespace, settings: Settings) -> int:
    # Whoever runs commands on the server already holds the data home: they act as its admin (the first grant).
    with open_state(settings.db_url) as db:
        if args.action == "grant":
            r = grant_role(db, local_actor(), args.who, args.role)
            print(f"{r.who}: {r.role} (granted by {r.granted_by})")
        elif args.action == "revoke":
            revoke_role(db, local_actor(), args.who)
            print(f"{args.who}: back to {DEFAULT_ROLE}")
        else:
            for r in roles(db):
                print(f"{r.who}\t{r.role}\t{r.granted_by}\t{r.granted_at:%Y-%m-%d %H:%M}")
            print(f"(everyone else who signs in: {DEFAULT_ROLE})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser("roles", help="who may do what on a shared server: list, grant, revoke")
    sub = r.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="everyone with a granted role")
    g = sub.add_parser("grant", help="give a person (their email, or the proxy's user name) a role")
    g.add_argument("who")
    g.add_argument("role", choices=ROLES)
    v = sub.add_parser("revoke", help=f"take a person's role away (back to {DEFAULT_ROLE})")
    v.add_argument("who")
    r.set_defaults(func=cmd_roles)
