"""The export command as a curator types it: a dry run first, then the export, clear errors when a recipe is
wrong or an export folder is in the way."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import yaml

from curation.cli.export import register
from curation.mixtures.recipe import load_recipe
from curation.review.actors import local_actor
from curation.settings import Settings, load_settings
from tests.support.exports_fixtures import make_home, recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "recipes"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Settings:
    return make_home(tmp_path_factory.mktemp("cli"))


def run(argv: list[str], settings: Settings) -> int:
    """Like curation.cli.main.main: the subcommand's function, errors as exit code 2 with a message."""
    parser = argparse.ArgumentParser(prog="python -m curation")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args, settings)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}")
        return 2


def _write(tmp_path: Path, **kw) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(**kw)))
    return path


def test_dry_run_prints_the_counts_and_writes_nothing(built, tmp_path, capsys):
    path = _write(tmp_path, total=20, components=[
        {"name": "depth", "filter": {"skills": ["si_depth_comparison"]}, "weight": 0.5},
        {"name": "video", "filter": {"groups": ["video"]}, "weight": 0.5}])
    assert run(["export", str(path), "--format", "llava", "--out", str(tmp_path / "out"), "--dry-run"], built) == 0
    out = capsys.readouterr().out
    assert "depth" in out and "video" in out and "missing_media 1" in out
    assert "asked 10, only 2 available" in out  # the short component is named
    assert not (tmp_path / "out").exists()
    assert run(["export", str(path), "--dry-run", "--json"], built) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [c["selected"] for c in summary["components"]] == [10, 2]


def test_export_writes_each_format_with_its_manifest(built, tmp_path, capsys):
    path = _write(tmp_path)
    code = run(["export", str(path), "--format", "llava,swift", "-f", "vst-sft", "--out", str(tmp_path / "out"),
                "--quiet"], built)
    assert code == 0
    out = capsys.readouterr().out
    for fmt in ("llava", "swift", "vst-sft"):
        assert f"{fmt}: 34 rows" in out
        manifest = json.loads((tmp_path / "out" / fmt / "manifest.json").read_text())
        assert manifest["recipe"]["file"] == str(path)
        assert manifest["exported_by"] == local_actor().who  # whoever runs the command on the server


def test_an_unknown_skill_is_a_clear_error(built, tmp_path, capsys):
    path = _write(tmp_path, components=[{"name": "x", "filter": {"skills": ["si_distanse"]}, "count": 3}])
    assert run(["export", str(path), "--format", "llava"], built) == 2
    out = capsys.readouterr().out
    assert "si_distanse" in out and "unknown skill" in out and str(path) in out


def test_no_catalog_and_no_format_are_clear_errors(tmp_path, capsys):
    path = _write(tmp_path)
    empty = load_settings(tmp_path / "empty")
    assert run(["export", str(path), "--format", "llava"], empty) == 2
    assert "no catalog" in capsys.readouterr().out


def test_a_recipe_without_formats_needs_format(built, tmp_path, capsys):
    path = _write(tmp_path)
    assert run(["export", str(path), "--out", str(tmp_path / "o")], built) == 2
    assert "--format" in capsys.readouterr().out


def test_an_existing_export_needs_force(built, tmp_path, capsys):
    path = _write(tmp_path, formats=["swift"])
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
    assert run(["export", str(path), "--out", str(tmp_path / "o"), "--quiet"], built) == 0
    assert run(["export", str(path), "--out", str(tmp_path / "o"), "--quiet"], built) == 2
    assert "--force" in capsys.readouterr().err
    assert run(["export", str(path), "--out", str(tmp_path / "o"), "--quiet", "--force", "--seed", "4"], built) == 0


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_recipes_are_valid(name):
    r = load_recipe(EXAMPLES / name)
    assert r.formats and r.components
