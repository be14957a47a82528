"""Who acts: the Actor (name, email, role) that writes to the curation state carry, and the single-user one."""

from __future__ import annotations

import getpass
from dataclasses import dataclass


def person_key(text: str) -> str:
    """How the state database names a person: the text without surrounding blanks, an email in lower case."""
    text = text.strip()
    return text.lower() if "@" in text else text


@dataclass(frozen=True)
class Actor:
    """A signed-in person (or the single user of a local `make run`) and their role."""

    name: str
    email: str | None
    role: str  # one of db.models.ROLES

    @property
    def who(self) -> str:
        """What flags, reviews and the audit log record for this person: the email, else the name."""
        return person_key(self.email or self.name)


def local_actor() -> Actor:
    """The one person of a single-user server without sign-in (loopback only): the machine's user, every right."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no USER variable and no passwd entry (some containers)
        name = "local"
    return Actor(name=name, email=None, role="admin")
