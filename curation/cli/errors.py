"""What the command line says when its environment fails it (a disk that is full or read-only, a data home it may not
write): one line naming the path and what to do, instead of a traceback. Bugs keep their traceback."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

from curation.settings import Settings

_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
# The same conditions as the libraries word them when they do not raise an OSError (DuckDB, SQLite, tantivy).
_FULL_TEXT = re.compile(r"no space left on device|database or disk is full|disk quota exceeded", re.IGNORECASE)
_READ_ONLY_TEXT = re.compile(r"read-only file system|readonly database|permission denied|operation not permitted|"
                             r"unable to open database file", re.IGNORECASE)
_NEARLY_FULL = 1 << 20  # bytes free under which an unspecific disk I/O error is read as a full disk
_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")


def environment_problem(exc: BaseException, settings: Settings) -> str | None:
    """The message for ``exc`` when it (or what caused it) is a full disk or a place this user cannot write; None
    for anything else."""
    for cause in _chain(exc):
        code = cause.errno if isinstance(cause, OSError) else None
        text = str(cause)
        if code in _FULL or (code is None and _FULL_TEXT.search(text)):
            return _disk_full(_path_of(cause, text, settings), settings)
        if code is None and "disk i/o error" in text.lower():  # SQLite's word for a full disk, among others
            path = _path_of(cause, text, settings)
            if _free_bytes(path, settings) < _NEARLY_FULL:
                return _disk_full(path, settings)
        if code in _READ_ONLY or (code is None and _READ_ONLY_TEXT.search(text)):
            return _not_writable(_path_of(cause, text, settings), settings, cause)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _path_of(cause: BaseException, text: str, settings: Settings) -> Path:
    """The file the error names; else the state database for SQLite's wordings; else the data home."""
    if isinstance(cause, OSError) and cause.filename:
        return Path(cause.filename)
    if m := _QUOTED_PATH.search(text):
        return Path(m.group(1))
    url = make_url(settings.db_url)
    from_sqlite = type(cause).__module__.split(".")[0] in ("sqlalchemy", "sqlite3") or "database" in text.lower()
    if from_sqlite and url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database)
    return settings.home


def _free_bytes(path: Path, settings: Settings) -> int:
    """Free space on the disk holding ``path`` (or its nearest existing folder)."""
    return shutil.disk_usage(next((p for p in (path, *path.parents) if p.exists()), settings.home)).free


def _disk_full(path: Path, settings: Settings) -> str:
    free = _free_bytes(path, settings)
    return (f"the disk holding {path} is full ({free / 2**20:,.1f} MiB free): free some space there, or point "
            f"--home / CURATOR_HOME at a data home on a larger disk, then run the command again. What earlier "
            f"commands committed is kept.")


def _not_writable(path: Path, settings: Settings, cause: BaseException) -> str:
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause).splitlines()[0][:160]
    return (f"{path} cannot be written ({reason}): this command writes into the data home {settings.home}, which "
            f"must be on a writable disk and writable by this user; fix its permissions or mount, or point --home / "
            f"CURATOR_HOME at a writable folder.")
