"""Stopping a server the tests started as a child process, for sure (a free port: labelstudio.server.pick_free_port)."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Ask a server to exit; kill it if it has not within ``timeout`` seconds (never leave one running)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
