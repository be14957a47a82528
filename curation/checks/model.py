"""Model checks: a vision-language model re-answers each question from the sample's media; disagreement is a fail.

The model is a local Hugging Face directory (Qwen2.5-VL family first), never downloaded; it runs through an engine
(curation.checks.model_engines: vLLM on GPU machines with requirements-gpu.txt, else transformers). A batch's rows
stream to the engine as one run of prompts, made ahead of it by CPU worker processes (curation.checks.model_inputs).
Besides the greedy answer, ``samples`` = n answers at ``temperature`` give each prompt a pass rate (how often the model
solves it). Every answer is scored with VST's scorer (curation.vst.scoring through consistency.agreement: an RL row by
its reward modes, as the exported reward file scores it). The greedy answer is the verdict; the answers, their scores,
the pass rate and the mean score are stored beside it in the results (MODEL_COLUMNS), apart from any verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from curation.checks.base import BatchCheck, CheckContext, Outcome, outcome_table
from curation.checks.consistency import agreement
from curation.checks.model_engines import Answers, Sampling, make_engine
from curation.checks.model_inputs import DEFAULT_MAX_PIXELS, VIDEO_FRAMES, PreparePrompt, PromptStream
from curation.checks.registry import register
from curation.vst.reasoning import split_reasoning

# What the model check stores per sample besides RESULT_SCHEMA's columns (curation.query.results).
MODEL_COLUMNS = pa.schema([
    ("answers", pa.list_(pa.string())),  # the greedy answer first, then the n samples
    ("answer_scores", pa.list_(pa.float64())),  # VST score of each, same order
    ("greedy_agrees", pa.bool_()),
    ("pass_rate", pa.float64()),  # share of the n samples that agree with the stored answer (NULL when n = 0)
    ("mean_score", pa.float64()),  # mean VST score of the n samples (NULL when n = 0)
])


def scored(row: dict[str, Any], model_output: str) -> tuple[float, str, bool, str]:
    """(score, metric, agrees, final answer) of one model output against the row's stored answer."""
    said = split_reasoning(model_output).final or model_output
    score, metric, agrees = agreement(said, row.get("answer") or "", question=row.get("question") or "",
                                      answer_kind=row.get("answer_kind"), rl_modes=row.get("rl_modes"))
    return score, metric, agrees, said


@register
class ReAnswer(BatchCheck):
    name = "model.reanswer"
    version = "2"
    description = ("A local vision-language model (params model_path) answers the question from the media; its greedy "
                   "answer is scored against the stored one with the sample's metric. With params samples=n it also "
                   "answers n times at a temperature: the pass rate (difficulty) and mean score are stored. Opt-in: "
                   "needs --model PATH.")
    applies_to = "samples with a question and an answer"
    columns = ("sample_id", "question", "answer", "answer_kind", "rl_modes", "media", "source_file", "row_group",
               "row_in_group")
    where = "s.question IS NOT NULL AND length(trim(s.question)) > 0 AND s.answer IS NOT NULL"
    cost = "model"
    needs_gpu = True
    default = False
    score_meaning = "agreement of the model's greedy answer with the stored answer (metric in the reason)"
    measurements = MODEL_COLUMNS

    def __init__(self, params: dict[str, Any] | None = None, engine=None):
        super().__init__(params)
        self._engine = engine
        self._stream: PromptStream | None = None

    def sampling(self) -> Sampling:
        p = self.params
        return Sampling(n=int(p.get("samples", 0) or 0), temperature=float(p.get("temperature", 1.0)),
                        top_p=float(p.get("top_p", 1.0)), max_new_tokens=int(p.get("max_new_tokens", 64)),
                        seed=int(p.get("seed", 0)), ignore_eos=bool(p.get("ignore_eos", False)))

    def engine(self):
        if self._engine is None:
            path = self.params.get("model_path")
            if not path:
                raise ValueError("model.reanswer needs params model_path (python -m curation check --model PATH)")
            self._engine = make_engine(str(path), self.params.get("model_backend", "auto"),
                                       batch_size=int(self.params.get("model_batch_size", 16)),
                                       max_in_flight=int(self.params.get("max_in_flight", 2048)))
        return self._engine

    def prompts(self) -> PromptStream:
        """Rows -> prompts, by worker processes a bounded window ahead of the engine."""
        if self._stream is None:
            engine = self.engine()
            prepare = PreparePrompt(str(self.params["model_path"]), features=engine.wants_features,
                                    video_frames=int(self.params.get("video_frames", VIDEO_FRAMES)),
                                    max_pixels=int(self.params.get("max_pixels") or DEFAULT_MAX_PIXELS),
                                    media_roots=tuple(str(r) for r in self.params.get("media_roots") or ()))
            window = max(int(self.params.get("prefetch", 256)), getattr(engine, "max_in_flight", 0))
            self._stream = PromptStream(prepare, int(self.params.get("decode_workers", 2)), window)
        return self._stream

    def answer(self, rows: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], Answers | None]]:
        """Every row with the engine's answers (None where its media could not be had), in row order: all the
        rows go to the engine as one stream."""
        engine, stream = self.engine(), self.prompts()
        ready = (prompt for prompt in stream(rows) if prompt.error is None)
        i = 0
        for got in engine.generate(ready, self.sampling()):
            while str(rows[i]["sample_id"]) != got.key:  # answers come in row order: rows passed over were skipped
                yield rows[i], None
                i += 1
            yield rows[i], got
            i += 1
        for row in rows[i:]:
            yield row, None

    def check_batch(self, rows: list[dict[str, Any]]) -> list[Outcome | None]:
        return [None if a is None else self.judge(row, a.greedy) for row, a in self.answer(rows)]

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        rows = self.rows(batch, ctx)
        decided: list[tuple[str, Outcome]] = []
        extra: list[dict[str, Any]] = []
        for row, got in self.answer(rows) if rows else ():
            if got is None:
                continue
            outcome, details = self.judge_all(row, got)
            decided.append((row["sample_id"], outcome))
            extra.append(details)
        table = outcome_table(decided)
        for f in MODEL_COLUMNS:
            table = table.append_column(f, pa.array([d[f.name] for d in extra], f.type))
        return table

    @staticmethod
    def judge(row: dict[str, Any], model_output: str) -> Outcome:
        score, metric, agrees, said = scored(row, model_output)
        stored = row.get("answer") or ""
        if agrees:
            return Outcome(True, score, f"model answered {said[:60]!r} ({metric} {score:.2f})")
        return Outcome(False, score, f"model answered {said[:60]!r}, the stored answer is {stored[:60]!r} "
                                     f"({metric} {score:.2f})")

    @classmethod
    def judge_all(cls, row: dict[str, Any], got: Answers) -> tuple[Outcome, dict[str, Any]]:
        """The greedy verdict, and MODEL_COLUMNS' values: every answer scored, pass rate and mean over the samples."""
        outcome = cls.judge(row, got.greedy)
        results = [scored(row, text) for text in got.samples]
        n = len(results)
        pass_rate = sum(r[2] for r in results) / n if n else None
        mean = sum(r[0] for r in results) / n if n else None
        if n:
            outcome = Outcome(outcome.passed, outcome.score,
                              f"{outcome.reason}; {sum(r[2] for r in results)}/{n} samples agree (mean {mean:.2f})")
        return outcome, {"answers": [got.greedy, *got.samples], "answer_scores": [outcome.score] + [r[0] for r in
                                                                                                    results],
                         "greedy_agrees": outcome.passed, "pass_rate": pass_rate, "mean_score": mean}

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None
