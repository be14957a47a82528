"""Stories of Label Studio links: pushed tasks are remembered by sample, never by position."""

from __future__ import annotations

import pytest

from curation.labelstudio.links import links_for_project, links_for_sample, list_projects, record_links, record_project
from curation.review.errors import StateError


def test_label_studio_pushes_are_remembered_by_sample_not_by_position(db):
    with pytest.raises(StateError, match="record_project first"):
        record_links(db, 7, {"s1": 101})
    record_project(db, 7, "Doubtful distances", "review", url="http://127.0.0.1:8081/projects/7")

    assert record_links(db, 7, {"s1": 101, "s2": 102}) == 2
    assert record_links(db, 7, [("s2", 202), ("s3", 103)]) == 1  # s2 pushed again: newest task wins

    links = {link.sample_id: link.task_id for link in links_for_project(db, 7)}
    assert links == {"s1": 101, "s2": 202, "s3": 103}
    assert [(p.id, p.kind) for p in list_projects(db, kind="review")] == [(7, "review")]
    assert links_for_sample(db, "s2")[0].kind == "review"
