"""Who may export: curators and admins, and the manifest says who did; a viewer's or an annotator's export is refused
by the domain layer before any folder is touched (an existing export stays, even with --force)."""

from __future__ import annotations

import json

import pytest

from curation.mixtures.export import export_mixture
from curation.mixtures.recipe import parse_recipe
from curation.review.roles import PermissionDenied
from curation.settings import Settings
from exports.manifest import MANIFEST_NAME
from tests.support.actors import ADMIN, ANNOTATOR, CURATOR, VIEWER
from tests.support.exports_fixtures import make_home, recipe


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Settings:
    return make_home(tmp_path_factory.mktemp("roles"))


def _tree(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("actor", [VIEWER, ANNOTATOR], ids=["viewer", "annotator"])
def test_a_viewer_or_an_annotator_cannot_export_and_nothing_is_written(built, tmp_path, actor):
    r = parse_recipe(recipe(control_set=True))
    with pytest.raises(PermissionDenied, match=f"{actor.who} has the role '{actor.role}', which may not export"):
        export_mixture(r, built, ["swift", "llava"], tmp_path / "new", by=actor)
    assert list(tmp_path.iterdir()) == []  # no folder, no .partial, no control set
    with pytest.raises(PermissionDenied):
        export_mixture(r, built, None, None, by=actor)  # the default place under the data home
    assert not (built.exports_dir / r.name).exists()

    # An earlier export that a refused --force would have replaced is left as it was.
    earlier, = export_mixture(parse_recipe(recipe()), built, ["swift"], tmp_path / "kept", by=CURATOR)
    before = _tree(earlier.out_dir)
    with pytest.raises(PermissionDenied):
        export_mixture(parse_recipe(recipe(seed=99)), built, ["swift"], tmp_path / "kept", by=actor, force=True)
    assert _tree(earlier.out_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


def test_the_manifest_names_who_exported(built, tmp_path):
    main, control = export_mixture(parse_recipe(recipe(control_set=True)), built, ["llava"], tmp_path / "out",
                                   by=CURATOR)
    for outcome in (main, control):
        manifest = json.loads((outcome.out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        assert manifest["exported_by"] == outcome.manifest["exported_by"] == "cy@example.com"
    by_admin, = export_mixture(parse_recipe(recipe()), built, ["llava"], tmp_path / "admin", by=ADMIN)
    assert by_admin.manifest["exported_by"] == "ada@example.com"
