"""Duplicate checks: exact copies (normalised text + media digests) and near duplicates (embeddings + ANN search)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from curation.checks.base import OUTCOME_SCHEMA, GlobalCheck, conform
from curation.checks.embeddings import encode_unique, normalise_text, question_core
from curation.checks.registry import register
from curation.vst.answers import extract_choice, parse_options
from curation.vst.reasoning import last_boxed
from curation.vst.vocabulary import placeholders_replaced_sql

log = logging.getLogger(__name__)

# Every text of a sample (turns, a separate RL thought) normalised: placeholders out, lower case, whitespace collapsed.
_ALL_TEXT = (
    "array_to_string(list_transform(turns, lambda t: coalesce(t.role, '') || ': ' || coalesce(t.text, '')), chr(30)) "
    "|| chr(30) || coalesce(reasoning, '')"
)
# Literal replaces, not a regex: 2x cheaper over 4M rows. Whitespace runs of up to 16 characters collapse to one.
_SPACED_TEXT = (
    "replace(replace(replace(" + placeholders_replaced_sql(_ALL_TEXT, "' '") + ", chr(10), ' '), chr(13), ' '), "
    "chr(9), ' ')"
)
_COLLAPSED = "replace(replace(replace(replace(t, '  ', ' '), '  ', ' '), '  ', ' '), '  ', ' ')"
# trim(t), which strips the Unicode space separators (Zs) at both ends, but only where an end has one: trim reads the
# whole text (0.5 CPU-s over 300k samples), the two anchored regexes do not.
_TRIMMED = r"CASE WHEN regexp_matches(t, '^\p{Zs}') OR regexp_matches(t, '\p{Zs}$') THEN trim(t) ELSE t END"
# In order: the same images in another order are another sample (the first image's camera frames the answer).
_MEDIA_SIGNATURE = (
    "array_to_string(list_transform(coalesce(media, []), lambda m: coalesce(m.digest, 'path:' || m.path, '')), ',')"
)


def exact_rows_sql(table: str = "samples") -> str:
    """A relation of every sample with its exact-duplicate key ``k`` (normalised text + media digests) and ``sig``."""
    return f"""(
      SELECT sample_id, source_file, row_index, question, answer, sig, hash(lower({_TRIMMED}), sig) AS k
      FROM (SELECT sample_id, source_file, row_index, question, answer, sig,
                   CASE WHEN contains(t, '  ') THEN {_COLLAPSED} ELSE t END AS t
            FROM (SELECT sample_id, source_file, row_index, question, answer, {_SPACED_TEXT} AS t,
                         {_MEDIA_SIGNATURE} AS sig FROM {table}))
    )"""


QUESTION_TEXT = r"lower(trim(regexp_replace(coalesce(question, ''), '\s+', ' ', 'g')))"
# Groups larger than this search with a faiss index instead of a dense similarity block.
DENSE_GROUP = 512


@register
class ExactDuplicates(GlobalCheck):
    name = "duplicates.exact"
    description = ("Samples with the same normalised text (all turns) and the same media digests: the first in "
                   "catalog order passes, later copies fail naming it.")
    applies_to = "all samples"
    columns = ("sample_id", "turns", "reasoning", "media", "source_file", "row_index")
    score_meaning = "copies in the group (1 = unique)"

    def run_global(self, gctx: Any) -> Iterator[pa.Table]:
        # Groups by aggregation (a hash table), not a window over every row: 4.1M rows stay within a few GiB.
        sql = f"""
        WITH x AS MATERIALIZED (SELECT sample_id, source_file, row_index, k FROM {exact_rows_sql()}),
        shared AS (SELECT k, count(*) AS n FROM x GROUP BY k HAVING count(*) > 1),
        g AS (
          SELECT x.k, any_value(shared.n) AS n, arg_min(x.sample_id, (x.source_file, x.row_index, x.sample_id))
                 AS first_id
          FROM x JOIN shared USING (k) GROUP BY x.k
        )
        SELECT x.sample_id, g.k IS NULL OR g.first_id = x.sample_id AS passed, coalesce(g.n, 1)::DOUBLE AS score,
          CASE WHEN g.k IS NULL OR g.first_id = x.sample_id THEN NULL
               ELSE format('exact duplicate of sample {{}} (same text and media; {{}} copies)', g.first_id, g.n)
          END AS reason
        FROM x LEFT JOIN g USING (k)
        """
        for batch in gctx.catalog_batches(sql):
            yield conform(pa.Table.from_batches([batch]))


def answer_content(answer: str | None, options: dict[str, str]) -> str:
    """What an answer says: the option's text when it is a letter of the offered options, else the text itself."""
    text = (answer or "").strip()
    text = last_boxed(text) or text
    letter = extract_choice(text) if options else None
    if letter and letter in options and len(text) <= 4:
        text = options[letter]
    return re.sub(r"[\s.]+$", "", normalise_text(text))


@register
class NearDuplicates(GlobalCheck):
    name = "duplicates.near"
    description = ("Two samples on the same media (or both text-only) whose questions, without options and "
                   "boilerplate, have MiniLM embeddings with cosine >= 0.95 and whose answers say the same (an "
                   "option letter read as its text): reworded copies, or the same question with shuffled options. "
                   "The same question with the same options but a different answer is a conflicting duplicate. "
                   "Searched per media group (faiss for large groups), never over all pairs; the first in catalog "
                   "order passes.")
    applies_to = "all samples"
    columns = ("sample_id", "question", "answer", "turns", "reasoning", "media", "source_file", "row_index")
    cost = "embedding"
    score_meaning = "cosine similarity of the question to its closest earlier question on the same media"

    def run_global(self, gctx: Any) -> Iterator[pa.Table]:
        threshold = float(self.params.get("near_threshold", 0.95))
        rows = gctx.catalog_table(f"""
            SELECT sample_id, sig, question, answer, k, count(*) OVER (PARTITION BY sig) AS group_size
            FROM {exact_rows_sql()} ORDER BY sig, source_file, row_index, sample_id
        """)
        ids = rows.column("sample_id").to_pylist()
        n = len(ids)
        # Only samples sharing their media with another sample (or text-only ones) can be near duplicates.
        candidates = np.flatnonzero(rows.column("group_size").to_numpy() > 1)
        best = np.full(n, np.nan)
        verdict: dict[int, tuple[int, str]] = {}
        if len(candidates):
            sigs = rows.column("sig").to_pylist()
            questions = rows.column("question").to_pylist()
            answers = rows.column("answer").to_pylist()
            keys = rows.column("k").to_pylist()
            cores = {int(i): question_core(questions[i]) for i in candidates}
            log.info("duplicates.near: embedding %d of %d questions", len(candidates), n)
            # Embedding is nearly all of this check's time: the job's progress follows it (judging is the rest).
            vectors = encode_unique(gctx.embedder(), [cores[int(i)] for i in candidates],
                                    on_encoded=lambda k, of: gctx.advance(0.9 * k / of),
                                    chunk=int(self.params.get("embed_chunk", 128)))
            gctx.alive()
            facts = _Facts(questions, answers, keys, cores)
            start = 0
            while start < len(candidates):
                end = start
                while end < len(candidates) and sigs[candidates[end]] == sigs[candidates[start]]:
                    end += 1
                _judge_group(vectors[start:end], candidates[start:end], facts, threshold, best, verdict)
                start = end
        passed = [i not in verdict for i in range(n)]
        reasons = [None if i not in verdict else verdict[i][1].replace("{id}", ids[verdict[i][0]]) for i in range(n)]
        scores = [None if np.isnan(b) else float(b) for b in best]
        yield pa.table([ids, passed, scores, reasons, pa.nulls(len(ids), pa.string())], schema=OUTCOME_SCHEMA)


class _Facts:
    """Per-row text facts a group judgement needs, computed lazily (options, answer content)."""

    def __init__(self, questions: list, answers: list, keys: list, cores: dict[int, str]):
        self.questions, self.answers, self.keys, self.cores = questions, answers, keys, cores
        self._options: dict[int, dict[str, str]] = {}

    def options(self, i: int) -> dict[str, str]:
        if i not in self._options:
            self._options[i] = parse_options(self.questions[i] or "")
        return self._options[i]

    def answer(self, i: int) -> str:
        return answer_content(self.answers[i], self.options(i))

    def option_set(self, i: int) -> frozenset[str]:
        return frozenset(normalise_text(v) for v in self.options(i).values())


def _pair_verdict(a: int, b: int, sim: float, facts: _Facts, threshold: float) -> str | None:
    """Why row a duplicates the earlier row b, or None."""
    if facts.keys[a] == facts.keys[b] or sim < threshold:
        return None  # exact copies are duplicates.exact's
    same_question = facts.cores[a] == facts.cores[b]
    if facts.answer(a) == facts.answer(b):
        what = "the same question" if same_question else "a reworded question"
        if same_question and facts.options(a) != facts.options(b):
            what = "the same question with other options"
        return (f"near duplicate of sample {{id}}: {what} on the same media with the same answer "
                f"(cosine {sim:.3f}): {facts.cores[a][:80]!r}")
    if same_question and facts.option_set(a) == facts.option_set(b):
        return (f"conflicting duplicate of sample {{id}}: the same question on the same media answered "
                f"{facts.answer(a)[:40]!r} here and {facts.answer(b)[:40]!r} there")
    return None


def _judge_group(vecs: np.ndarray, members: np.ndarray, facts: _Facts, threshold: float, best: np.ndarray,
                 verdict: dict[int, tuple[int, str]]) -> None:
    """For each member, the earlier members (catalog order) it duplicates: dense block or faiss neighbours."""
    g = len(members)
    if g < 2:
        return
    if g <= DENSE_GROUP:
        sims = vecs @ vecs.T
        neighbours = [[(float(sims[a, b]), b) for b in np.argsort(-sims[a, :a])[:16]] for a in range(g)]
    else:
        import faiss

        index = faiss.IndexFlatIP(vecs.shape[1]) if g < 200_000 else _ivf(vecs)
        index.add(np.ascontiguousarray(vecs, dtype=np.float32))
        sims, nbrs = index.search(np.ascontiguousarray(vecs, dtype=np.float32), min(g, 17))
        neighbours = [[(float(s), int(b)) for s, b in zip(sims[a], nbrs[a]) if 0 <= b < a] for a in range(g)]
    for a in range(1, g):
        i = int(members[a])
        for sim, b in neighbours[a]:
            j = int(members[b])
            if np.isnan(best[i]) or sim > best[i]:
                best[i] = sim
            why = _pair_verdict(i, j, sim, facts, threshold)
            if why is not None:
                verdict[i] = (j, why)
                break


def _ivf(vecs: np.ndarray):
    import faiss

    nlist = int(4 * np.sqrt(len(vecs)))
    quantizer = faiss.IndexFlatIP(vecs.shape[1])
    index = faiss.IndexIVFFlat(quantizer, vecs.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    sample = vecs[np.random.default_rng(0).choice(len(vecs), size=min(len(vecs), nlist * 40), replace=False)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.nprobe = 16
    return index
