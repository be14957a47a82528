#!/usr/bin/env bash
# `make labelstudio`: build the Label Studio server's own environment (.venv-ls) if needed and run the server
# on 127.0.0.1 (port from the settings' labelstudio_url, default 8081) with SQLite under the data home.
# The first start takes ~30 s (migrations); it prints the login, the API token, and where media is served from.
# Extra arguments go to `python -m curation.labelstudio.server run` (e.g. --port 8090, --home DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
  echo "no app environment at .venv: run 'make install' (or set PYTHON=...)" >&2
  exit 2
fi
exec "$PY" -m curation.labelstudio.server run "$@"
