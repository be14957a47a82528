"""The `app` command: serve the curator's Streamlit app on the current data home."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from curation.review.sign_in import describe, refuse_unprotected, secrets_path, sign_in_config
from curation.settings import Settings

APP = Path(__file__).resolve().parents[2] / "app" / "Home.py"


def app_command(settings: Settings, port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The `streamlit run` command line for the app (headless, no usage statistics, no file watcher; the data
    home's secrets.toml as Streamlit's only secrets file, so sign-in is what curation.review.sign_in reads)."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
            "--server.address", address, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--secrets.files", str(secrets_path(settings))]


def cmd_app(args: argparse.Namespace, settings: Settings) -> int:
    if not Path(settings.catalog_path).exists():
        print(f"no catalog at {settings.catalog_path}: run `python -m curation demo` and `python -m curation ingest "
              "PATH...` first (the app would only say so)", file=sys.stderr)
    sign_in = sign_in_config(settings)  # a broken secrets file stops here, naming the file and the key
    refused = refuse_unprotected(args.address, sign_in)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    print(describe(sign_in))
    env = {**os.environ, "CURATOR_HOME": str(settings.home)}
    print(f"VST Curator on http://{args.address}:{args.port} (data home {settings.home}); Ctrl-C stops it")
    try:
        return subprocess.call(app_command(settings, args.port, args.address), env=env)
    except KeyboardInterrupt:
        return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    a = subparsers.add_parser("app", help="serve the Streamlit app (Overview, Browse, Sample review)")
    a.add_argument("--port", type=int, default=8501)
    a.add_argument("--address", default="127.0.0.1",
                   help="interface to listen on; any other than loopback needs sign-in configured (README 'Sign-in')")
    a.set_defaults(func=cmd_app)
