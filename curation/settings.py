"""Where everything lives: one data home (CURATOR_HOME), every path overridable by env or TOML."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Resolved paths and URLs. Build with :func:`load_settings`; tests pass their own home."""

    home: Path
    catalog_path: Path
    text_index_dir: Path
    results_dir: Path
    db_url: str
    exports_dir: Path
    media_cache_dir: Path
    scene_root: Path
    labelstudio_url: str = "http://127.0.0.1:8081"
    labelstudio_token: str = ""
    labelstudio_files_root: Path = field(default=Path("."))
    # Folders media paths may point into besides each shard's own folder tree (CURATOR_MEDIA_ROOTS, os.pathsep
    # between them; in curator.toml a list or such a string): any other file a shard names is never read.
    media_roots: tuple[Path, ...] = ()

    def ensure_dirs(self) -> Settings:
        for p in (self.home, self.text_index_dir, self.results_dir, self.exports_dir, self.media_cache_dir):
            p.mkdir(parents=True, exist_ok=True)
        return self


# env var -> settings field; the TOML file uses the field names as keys.
_ENV = {
    "CURATOR_CATALOG": "catalog_path",
    "CURATOR_TEXT_INDEX": "text_index_dir",
    "CURATOR_RESULTS": "results_dir",
    "CURATOR_DB_URL": "db_url",
    "CURATOR_EXPORTS": "exports_dir",
    "CURATOR_MEDIA_CACHE": "media_cache_dir",
    "CURATOR_SCENE_ROOT": "scene_root",
    "LABEL_STUDIO_URL": "labelstudio_url",
    "LABEL_STUDIO_TOKEN": "labelstudio_token",
    "CURATOR_LS_FILES_ROOT": "labelstudio_files_root",
    "CURATOR_MEDIA_ROOTS": "media_roots",
}


def media_roots(value: str | list[str] | tuple | None) -> tuple[Path, ...]:
    """CURATOR_MEDIA_ROOTS as folders: an os.pathsep-separated string (the environment) or a list (curator.toml)."""
    if value is not None and not isinstance(value, str | list | tuple):
        raise ValueError(f"media_roots is {value!r}: give a list of folders (curator.toml) or folders separated by "
                         f"{os.pathsep!r} (CURATOR_MEDIA_ROOTS)")
    parts = value.split(os.pathsep) if isinstance(value, str) else list(value or ())
    return tuple(Path(str(p)).expanduser() for p in parts if str(p).strip())


def load_settings(home: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from (lowest first) defaults under the home, ``<home>/curator.toml``, env vars."""
    env = dict(os.environ if env is None else env)
    home_path = Path(home or env.get("CURATOR_HOME") or "data").resolve()
    values: dict[str, object] = {
        "home": home_path,
        "catalog_path": home_path / "catalog.duckdb",
        "text_index_dir": home_path / "text_index",
        "results_dir": home_path / "results",
        "db_url": f"sqlite:///{home_path / 'state.sqlite'}",
        "exports_dir": home_path / "exports",
        "media_cache_dir": home_path / "cache",
        "scene_root": home_path / "demo" / "scenes",
        "labelstudio_files_root": home_path / "labelstudio" / "files",
    }
    toml_path = Path(env.get("CURATOR_SETTINGS", home_path / "curator.toml"))
    if toml_path.is_file():
        with toml_path.open("rb") as fh:
            values.update({k: v for k, v in tomllib.load(fh).items() if k in Settings.__dataclass_fields__})
    for var, name in _ENV.items():
        if env.get(var):
            values[name] = env[var]
    path_fields = {n for n, f in Settings.__dataclass_fields__.items() if f.type in ("Path", Path)}
    values["media_roots"] = media_roots(values.get("media_roots"))  # type: ignore[arg-type]
    return Settings(**{k: (Path(v) if k in path_fields else v) for k, v in values.items()})  # type: ignore[arg-type]
