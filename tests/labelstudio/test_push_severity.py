"""What a pushed task says about a sample's failures: each failure with its severity, the most severe first (in the
note the annotator reads and in task data columns Label Studio's data manager filters and sorts by), and a verdict
suggested by the most severe failure."""

from __future__ import annotations

from curation.labelstudio.configs import SampleKind
from curation.labelstudio.push import check_predictions, sample_failures, task_data
from curation.query.results import sample_results
from tests.support.exports_fixtures import make_home, write_results


def test_tasks_carry_failures_worst_first_and_the_worst_severity(tmp_path):
    settings = make_home(tmp_path)
    write_results(settings, "duplicates.near", {"dist-001": (False, "near duplicate of dist-002: cosine 0.97"),
                                                "dist-003": (False, "near duplicate of dist-004: cosine 0.96")},
                  severity="warning")
    write_results(settings, "media.decodable", {"dist-001": (False, "media[0]: not an image"),
                                                "dist-002": (True, None)}, severity="error")
    write_results(settings, "format.type_known", {"dist-003": (False, "type 'unknow' read as 'unknown'")},
                  severity="info")
    ids = ["dist-001", "dist-002", "dist-003", "dist-005"]
    results = sample_results(settings.results_dir, ids)
    failures = sample_failures(results)
    row = {"sample_id": "dist-001", "skill": "si_distance", "dataset": "vst-p", "question": "How far?", "answer": "2"}

    data = task_data(row, SampleKind.SINGLE_IMAGE, ["/data/local-files/?d=vst/a.png"], "", failures["dist-001"])
    assert data["severity"] == "error"
    assert data["failures"].splitlines() == ["media.decodable (error): media[0]: not an image",
                                             "duplicates.near (warning): near duplicate of dist-002: cosine 0.97"]
    assert task_data({**row, "sample_id": "dist-003"}, SampleKind.SINGLE_IMAGE, [], "",
                     failures["dist-003"])["severity"] == "warning"
    assert task_data({**row, "sample_id": "dist-005"}, SampleKind.SINGLE_IMAGE, [], "")["severity"] == "none"

    # The suggested verdict comes from the most severe failure (bad media), though duplicates.near sorts first.
    (prediction,) = check_predictions(results)["dist-001"]
    value = {r["from_name"]: r["value"] for r in prediction["result"]}
    assert value["verdict"]["choices"] == ["bad media"]
    assert value["note"]["text"] == ["media.decodable (error): media[0]: not an image; "
                                     "duplicates.near (warning): near duplicate of dist-002: cosine 0.97"]
