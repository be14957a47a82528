"""Start, check and stop a local Label Studio server that lives in its own virtual environment (.venv-ls).

The server is ``label-studio`` from PyPI, kept out of the app's environment (it would downgrade
pyarrow and pull ~90 packages). It runs on 127.0.0.1 with SQLite under a data folder, serves our
media through its local-files storage, and is reached with a legacy API token we choose on the
first start (without ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN`` then, every call with it is a 401).

Command line (``make labelstudio`` runs ``scripts/labelstudio.sh``, which calls this)::

    python -m curation.labelstudio.server run [--home DIR] [--port P]   # foreground, Ctrl-C stops it
    python -m curation.labelstudio.server venv                           # only build .venv-ls
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = Path(os.environ.get("CURATOR_LS_VENV") or REPO_ROOT / ".venv-ls")
REQUIREMENTS = REPO_ROOT / "requirements-ls.txt"
HOST = "127.0.0.1"
# Every project's local-files storage points at <files root>/MEDIA_SUBDIR; media files live below it.
MEDIA_SUBDIR = "vst"
CREDENTIALS_FILE = "credentials.json"
CONNECTION_FILE = "server.json"
LOG_FILE = "server.log"
DB_FILE = "label_studio.sqlite3"
TEMPLATE_DIR = "curator-template"
_STARTED_AT = re.compile(r"Starting development server at https?://[^:/]+:(\d+)/")


class LabelStudioServerError(RuntimeError):
    """The Label Studio server could not be built, started or reached; the message says what to do."""


@dataclass(frozen=True)
class Credentials:
    """The server's admin user and its legacy API token (40 hex chars), kept in the data folder."""

    username: str
    password: str
    token: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls("curator@example.com", secrets.token_urlsafe(18), secrets.token_hex(20))

    @classmethod
    def load(cls, path: Path) -> Credentials:
        try:
            raw = json.loads(path.read_text())
            return cls(str(raw["username"]), str(raw["password"]), str(raw["token"]))
        except (OSError, ValueError, KeyError) as exc:
            raise LabelStudioServerError(f"{path}: unreadable Label Studio credentials ({exc})") from exc

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)


@dataclass
class LabelStudioServer:
    """A running server this process started (or found running with our credentials)."""

    url: str
    port: int
    data_dir: Path
    files_root: Path
    credentials: Credentials
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def token(self) -> str:
        return self.credentials.token

    @property
    def media_dir(self) -> Path:
        """The folder the projects' local-files storages point at."""
        return self.files_root / MEDIA_SUBDIR

    def wait_ready(self, timeout: float = 180.0) -> Self:
        """Block until the server answers on our port with our token (stopping it if it never does)."""
        try:
            wait_healthy(self, timeout)
        except BaseException:
            self.stop()
            raise
        if self.process is not None:
            (self.data_dir / CONNECTION_FILE).write_text(json.dumps({"url": self.url, "pid": self.process.pid}))
        return self

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server's process group (the Django server forks a reloader-free child)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None
        (self.data_dir / CONNECTION_FILE).unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def label_studio_executable(venv: Path = DEFAULT_VENV) -> Path:
    return Path(venv) / "bin" / "label-studio"


def ensure_venv(venv: Path = DEFAULT_VENV, requirements: Path = REQUIREMENTS, quiet: bool = True) -> Path:
    """Create ``venv`` with the pinned server unless it already has one; return the ``label-studio`` path."""
    exe = label_studio_executable(venv)
    if exe.exists():
        return exe
    venv = Path(venv)
    lock_path = venv.parent / f".{venv.name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions must not build it at once
        if exe.exists():
            return exe
        out = subprocess.DEVNULL if quiet else None
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=out)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", "-r", str(requirements)], check=True, stdout=out
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise LabelStudioServerError(
                f"could not build the Label Studio environment {venv} from {requirements}: {exc}. "
                f"Build it by hand: python3 -m venv {venv} && {venv}/bin/pip install -r {requirements}"
            ) from exc
    if not exe.exists():
        raise LabelStudioServerError(f"{venv}: installed {requirements} but {exe} is missing")
    return exe


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing accepts connections on ``host:port`` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if s.connect_ex((host, port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the server does: connections of a stopped server lingering in TIME_WAIT do not block it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_env(data_dir: Path, files_root: Path, credentials: Credentials) -> dict[str, str]:
    """Environment for ``label-studio start``: our user and token, SQLite in ``data_dir``, local files on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LABEL_STUDIO_USERNAME=credentials.username,
        LABEL_STUDIO_PASSWORD=credentials.password,
        LABEL_STUDIO_USER_TOKEN=credentials.token,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(files_root),
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        PYTHONUNBUFFERED="1",  # so the log shows the port line as soon as it is printed
    )
    return env


def whoami(url: str, token: str, timeout: float = 5.0) -> str | None:
    """The e-mail of the user the legacy token belongs to, or None when the server refuses it."""
    req = urllib.request.Request(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read()).get("email")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:
            return json.loads(resp.read()).get("status") == "UP"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_healthy(server: LabelStudioServer, timeout: float = 180.0) -> None:
    """Wait until our process answers /health on our port and accepts our token; raise otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise LabelStudioServerError(
                f"Label Studio exited with code {server.process.returncode} while starting; "
                f"log {server.log_path}:\n{_log_tail(server.log_path)}"
            )
        log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
        started = _STARTED_AT.search(log)
        # It silently moves to the next port when ours is busy: make sure the one it reports is ours.
        if started and int(started.group(1)) != server.port:
            raise LabelStudioServerError(
                f"Label Studio started on port {started.group(1)} instead of {server.port} (port taken meanwhile); "
                "start it again"
            )
        if started and is_healthy(server.url):
            if whoami(server.url, server.token) != server.credentials.username:
                raise LabelStudioServerError(
                    f"{server.url} answers but refuses the token from {server.data_dir / CREDENTIALS_FILE}: "
                    "another Label Studio on that port, or a data folder created without the legacy-token flag"
                )
            return
        time.sleep(0.5)
    raise LabelStudioServerError(
        f"Label Studio not healthy at {server.url} after {timeout:.0f} s; log {server.log_path}:\n"
        f"{_log_tail(server.log_path)}"
    )


def _seed_from_template(data_dir: Path, template: Path | None) -> None:
    """Copy a migrated, initialised data folder so a fresh server starts in ~5 s instead of ~30 s."""
    if template is None or (data_dir / DB_FILE).exists() or not (template / DB_FILE).exists():
        return
    shutil.copytree(template, data_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(LOG_FILE, CONNECTION_FILE))


def start_server(
    data_dir: str | os.PathLike,
    *,
    files_root: str | os.PathLike | None = None,
    port: int | None = None,
    venv: Path = DEFAULT_VENV,
    template: Path | None = None,
    timeout: float = 180.0,
    wait: bool = True,
) -> LabelStudioServer:
    """Start Label Studio on 127.0.0.1 with its SQLite database and credentials in ``data_dir``.

    ``files_root`` is the folder it serves under /data/local-files/ (default ``data_dir/files``);
    ``port`` None picks a free one. The credentials are generated on the first start and reused.
    ``wait=False`` returns as soon as the process runs (it boots in the background); call
    ``server.wait_ready()`` before using it.
    """
    data_dir = Path(data_dir).resolve()
    files_root = Path(files_root).resolve() if files_root else data_dir / "files"
    exe = label_studio_executable(venv)
    if not exe.exists():
        raise LabelStudioServerError(f"no Label Studio at {exe}: run `make labelstudio` (builds {venv}) first")
    data_dir.mkdir(parents=True, exist_ok=True)
    _seed_from_template(data_dir, template)
    (files_root / MEDIA_SUBDIR).mkdir(parents=True, exist_ok=True)
    cred_path = data_dir / CREDENTIALS_FILE
    if cred_path.exists():
        credentials = Credentials.load(cred_path)
    elif (data_dir / DB_FILE).exists():
        raise LabelStudioServerError(
            f"{data_dir} holds a Label Studio database but no {CREDENTIALS_FILE}: its token is unknown; "
            "use another data folder or write the file (username, password, token)"
        )
    else:
        credentials = Credentials.generate()
        credentials.save(cred_path)
    if port is None:
        port = pick_free_port()
    elif not port_is_free(port):
        raise LabelStudioServerError(f"port {port} on {HOST} is in use: stop what runs there or choose another port")
    log_path = data_dir / LOG_FILE
    log = log_path.open("w")
    cmd = [str(exe), "start", "--no-browser", "--internal-host", HOST, "--port", str(port),
           "--enable-legacy-api-token"]  # fmt: skip
    process = subprocess.Popen(
        cmd,
        cwd=data_dir,
        env=server_env(data_dir, files_root, credentials),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stop() ends it and nothing else
    )
    log.close()
    server = LabelStudioServer(f"http://{HOST}:{port}", port, data_dir, files_root, credentials, log_path, process)
    if wait:
        server.wait_ready(timeout)
    return server


def template_dir(venv: Path = DEFAULT_VENV, requirements: Path = REQUIREMENTS) -> Path:
    """Keyed by the pinned requirements, so a new Label Studio version migrates a fresh template."""
    digest = hashlib.sha1(Path(requirements).read_bytes()).hexdigest()[:10] if Path(requirements).exists() else "x"
    return Path(venv) / f"{TEMPLATE_DIR}-{digest}"


def ensure_template(venv: Path = DEFAULT_VENV, timeout: float = 180.0) -> Path:
    """A data folder migrated and initialised once per .venv-ls (tests copy it: ~5 s starts)."""
    target = template_dir(venv)
    if (target / DB_FILE).exists():
        return target
    with (Path(venv) / ".template.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / DB_FILE).exists():
            return target
        build = Path(tempfile.mkdtemp(prefix="template-", dir=venv))
        with start_server(build / "data", files_root=build / "files", venv=venv, timeout=timeout):
            pass
        shutil.rmtree(build / "data" / "export", ignore_errors=True)
        (build / "data" / LOG_FILE).unlink(missing_ok=True)
        (build / "data").rename(target)
        shutil.rmtree(build, ignore_errors=True)
    return target


def read_credentials(data_dir: str | os.PathLike) -> Credentials | None:
    """The credentials a server started here wrote, or None (used when settings carry no token)."""
    path = Path(data_dir) / CREDENTIALS_FILE
    return Credentials.load(path) if path.exists() else None


def data_dir_for_home(home: Path) -> Path:
    """Where ``make labelstudio`` keeps the server's database and credentials under the data home."""
    return Path(home) / "labelstudio"


def _run(args: argparse.Namespace) -> int:
    from curation.settings import load_settings

    settings = load_settings(args.home)
    ensure_venv(args.venv, quiet=False)
    port = args.port or urlparse(settings.labelstudio_url).port or 8081
    data_dir = data_dir_for_home(settings.home)
    creds = read_credentials(data_dir)
    url = f"http://{HOST}:{port}"
    if creds and whoami(url, creds.token) == creds.username:
        print(f"Label Studio already running at {url} (data {data_dir})")
        return 0
    print(f"starting Label Studio on {url} (data {data_dir}; first start takes ~30 s) ...", flush=True)
    server = start_server(data_dir, files_root=settings.labelstudio_files_root, port=port, venv=args.venv)
    print(
        f"Label Studio is up: {server.url}\n"
        f"  log in as {server.credentials.username} / {server.credentials.password}\n"
        f"  API token {server.token} (the CLI reads it from {data_dir / CREDENTIALS_FILE};\n"
        f"  or export LABEL_STUDIO_URL={server.url} LABEL_STUDIO_TOKEN={server.token})\n"
        f"  media served from {server.media_dir}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    # Ctrl-C and kill both end in stop(); SIGINT is set explicitly because a job started in the
    # background by a non-interactive shell inherits it as ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while server.is_running():
            time.sleep(1)
        print(f"Label Studio exited; log {server.log_path}:\n{_log_tail(server.log_path)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curation.labelstudio.server", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="build .venv-ls if needed and run the server in the foreground")
    run.add_argument("--home", help="data home (default CURATOR_HOME or ./data)")
    run.add_argument("--port", type=int, help="port (default: the one in the settings' labelstudio_url)")
    run.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    venv = sub.add_parser("venv", help="only build the server's virtual environment")
    venv.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    args = parser.parse_args(argv)
    try:
        if args.command == "venv":
            print(ensure_venv(args.venv, quiet=False))
            return 0
        return _run(args)
    except LabelStudioServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
