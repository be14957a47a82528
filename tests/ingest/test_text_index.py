"""The text index writer: documents are added on its own thread, and nothing it raises there is lost."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import tantivy

from curation.ingest.text_index import TextIndexWriter, search_text


def docs(source_file: str, *questions: str, first_key: int = 0) -> list[pa.RecordBatch]:
    rows = [
        json.dumps({"row_key": first_key + i, "sample_id": f"{source_file}-{i}", "source_file": source_file,
                    "question": q, "answer": "", "reasoning": ""})
        for i, q in enumerate(questions)
    ]
    return [pa.RecordBatch.from_pydict({"doc": rows})]


def num_docs(directory) -> int:
    return tantivy.Index.open(str(directory)).searcher().num_docs


def test_replacing_a_file_replaces_its_documents(tmp_path):
    w = TextIndexWriter(tmp_path)
    w.replace_files([], docs("a", "chair near the table", "lamp"))
    w.replace_files([], docs("b", "sofa", first_key=10))
    w.commit()
    w.replace_files(["a"], docs("a", "bed", first_key=20))
    w.commit()
    w.close()
    assert num_docs(tmp_path) == 2
    assert search_text(tmp_path, "bed").row_keys.tolist() == [20] and search_text(tmp_path, "chair").total == 0


def test_a_failure_on_the_writer_thread_surfaces_and_rollback_keeps_the_last_commit(tmp_path):
    w = TextIndexWriter(tmp_path)
    w.replace_files([], docs("a", "chair"))
    w.commit()
    w.replace_files([], [pa.RecordBatch.from_pydict({"doc": ["{not json"]})])
    with pytest.raises(ValueError):
        w.commit()
    w.rollback()
    w.close()
    assert num_docs(tmp_path) == 1
