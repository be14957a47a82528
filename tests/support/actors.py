"""People the tests act as: one Actor per role (the domain layer checks each write against the actor's role)."""

from curation.review.actors import Actor

ADMIN = Actor("Ada Admin", "ada@example.com", "admin")
CURATOR = Actor("Cy Curator", "cy@example.com", "curator")
ANNOTATOR = Actor("Ann Annotator", "ann@example.com", "annotator")
VIEWER = Actor("Vera Viewer", "vera@example.com", "viewer")


def person(name: str, role: str = "curator") -> Actor:
    """An Actor named ``name`` (recorded as ``name``: no email) with ``role``; tests that record several people."""
    return Actor(name, None, role)
