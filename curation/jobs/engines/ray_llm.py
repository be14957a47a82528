"""The model check on a cluster through Ray Data's LLM processor (``ray.data.llm``: vLLM engine actors on the GPUs).

A chunk's rows become requests (one greedy and ``samples`` sampled ones per row, each with its own sampling
parameters); images are decoded and fitted to the pixel budget in the processor's ``preprocess`` (Ray tasks on the
CPUs, ahead of the engines); the answers come back to the driver, which scores and stores them with the same check
code as the local path (curation.checks.model: same scorer, same results layout). Where vLLM cannot run, the same
rows go through ``AnswerStage``: the project's own engine behind the processor's row contract (messages and
sampling_params in, generated_text out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from curation.checks.base import CheckContext, outcome_table, with_check_columns
from curation.checks.model import MODEL_COLUMNS, ReAnswer
from curation.checks.model_engines import Answers, Sampling, make_engine
from curation.checks.model_inputs import (
    DEFAULT_MAX_PIXELS,
    VIDEO_FRAMES,
    load_processor,
    make_prompt,
    sample_images,
)

KEY = "__k"  # request number within its row: 0 greedy, 1..n sampled


def requests_of(rows: pa.Table, n: int) -> pa.Table:
    """Each row n + 1 times, numbered by KEY (0: the greedy request)."""
    per = n + 1
    take = np.repeat(np.arange(rows.num_rows), per)
    return rows.take(pa.array(take)).append_column(KEY, pa.array(np.tile(np.arange(per), rows.num_rows)))


def sampling_params(sampling: Sampling, k: int) -> dict[str, Any]:
    """vLLM sampling parameters of request ``k`` of a row: greedy for 0, else a sample with its own seed."""
    if k == 0:
        out: dict[str, Any] = {"temperature": 0.0}
    else:
        out = {"temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed + k}
    out["max_tokens"] = sampling.max_new_tokens
    if sampling.ignore_eos:
        out["ignore_eos"] = True
    return out


class Preprocess:
    """Catalog row (plus KEY) -> the processor's input: OpenAI-style messages with the fitted images, sampling
    parameters, and the columns the driver needs back. Rows whose media cannot be had carry ``error``."""

    def __init__(self, params: dict[str, Any], passthrough: tuple[str, ...]):
        self.sampling = ReAnswer(params).sampling()
        self.max_pixels = int(params.get("max_pixels") or DEFAULT_MAX_PIXELS)
        self.video_frames = int(params.get("video_frames", VIDEO_FRAMES))
        self.media_roots = tuple(str(r) for r in params.get("media_roots") or ())
        self.passthrough = passthrough

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {c: row[c] for c in self.passthrough}
        try:
            images = sample_images(row, 4 * 28 * 28, self.max_pixels, self.video_frames, self.media_roots)
            out["error"] = ""
        except Exception as exc:  # the media checks report it; the row gets no model outcome
            images, out["error"] = [], f"{type(exc).__name__}: {exc}"
        content: list[dict[str, Any]] = [{"type": "image", "image": im} for im in images]
        content.append({"type": "text", "text": row.get("question") or ""})
        out["messages"] = [{"role": "user", "content": content}]
        out["sampling_params"] = sampling_params(self.sampling, int(row[KEY]))
        return out


def postprocess(row: dict[str, Any]) -> dict[str, Any]:
    """The processor's output row -> what the driver scores (sample, request number, shard, text)."""
    return {"sample_id": row["sample_id"], KEY: int(row[KEY]), "__unit": row["__unit"],
            "generated_text": row.get("generated_text") or "", "error": row.get("error") or ""}


def vllm_installed() -> bool:
    """vLLM can be imported here (the driver of a GPU cluster with the GPU environment)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def vllm_processor(params: dict[str, Any], passthrough: tuple[str, ...]):
    """ray.data.llm's vLLM processor for the model check (needs vLLM on the cluster's GPU workers)."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    config = vLLMEngineProcessorConfig(
        model_source=str(params["model_path"]),
        engine_kwargs={"max_model_len": int(params.get("max_model_len", 8192)),
                       "limit_mm_per_prompt": {"image": int(params.get("max_images", 8))}},
        batch_size=int(params.get("ray_llm_batch_size", 256)),
        concurrency=int(params.get("ray_llm_replicas", 1)),
        prepare_multimodal_stage={"enabled": True},
    )
    return build_processor(config, preprocess=Preprocess(params, passthrough), postprocess=postprocess)


class AnswerStage:
    """A Ray Data actor that answers processor-shaped rows with the project's own engine (transformers where vLLM
    cannot run; a stand-in for the vLLM stage in tests), honouring each row's sampling parameters."""

    def __init__(self, model_path: str, backend: str = "transformers", batch_size: int = 16):
        self.engine = make_engine(model_path, backend, batch_size=batch_size)
        self.processor = load_processor(model_path)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch[KEY])
        texts = [""] * n
        groups: dict[tuple, list[int]] = {}
        for i in range(n):
            if not batch["error"][i]:
                # Ray Data stores the dicts as one struct type: keys another row has come back as None.
                sp = {k: v for k, v in batch["sampling_params"][i].items() if v is not None}
                groups.setdefault(tuple(sorted(sp.items())), []).append(i)
        for key, idx in groups.items():
            sp = dict(key)
            greedy = float(sp.get("temperature") or 0.0) == 0.0
            sampling = Sampling(n=0 if greedy else 1, temperature=float(sp.get("temperature") or 1.0),
                                top_p=float(sp.get("top_p", 1.0)), max_new_tokens=int(sp["max_tokens"]),
                                ignore_eos=bool(sp.get("ignore_eos")), seed=int(sp.get("seed", 0)), greedy=greedy)
            prompts = (self._prompt(batch, i) for i in idx)
            for i, got in zip(idx, self.engine.generate(prompts, sampling)):
                texts[i] = got.greedy if greedy else got.samples[0]
        out = {k: v for k, v in batch.items() if k not in ("messages", "sampling_params")}
        out["generated_text"] = np.array(texts, dtype=object)
        return out

    def _prompt(self, batch: dict[str, np.ndarray], i: int):
        content = batch["messages"][i][0]["content"]
        images = [c["image"] for c in content if c["type"] == "image"]
        question = next(c["text"] for c in content if c["type"] == "text")
        return make_prompt(self.processor, str(batch["sample_id"][i]), question, images, self.engine.wants_features)


def answer_on_ray(ds, params: dict[str, Any], passthrough: tuple[str, ...], processor: Callable | None = None,
                  resources: dict[str, float] | None = None) -> pa.Table:
    """Requests of a Ray dataset of catalog rows (with KEY) answered on the cluster: the vLLM processor where
    given, else AnswerStage (one actor with ``resources``); returns postprocess's columns."""
    if processor is not None:
        out = processor(ds)
    else:
        out = (ds.map(Preprocess(params, passthrough))
               .map_batches(AnswerStage, batch_format="numpy", concurrency=1,
                            batch_size=int(params.get("ray_llm_batch_size", 256)),
                            fn_constructor_kwargs={"model_path": str(params["model_path"]),
                                                   "backend": params.get("model_backend", "auto"),
                                                   "batch_size": int(params.get("model_batch_size", 16))},
                            **(resources or {"num_cpus": 0.5}))
               .map(postprocess))
    return pa.Table.from_pylist(out.take_all())


def outcomes_from_answers(answers: pa.Table, rows: pa.Table, check: ReAnswer, run_id: str) -> pa.Table:
    """The model check's results (RESULT_SCHEMA + MODEL_COLUMNS + the shard column) from the cluster's answers,
    judged by the check's own code: the same scorer and layout as the local path."""
    by_sample: dict[str, dict[int, str]] = {}
    failed: set[str] = set()
    for a in answers.to_pylist():
        if a["error"]:
            failed.add(a["sample_id"])
        by_sample.setdefault(a["sample_id"], {})[a[KEY]] = a["generated_text"]
    decided, extra, units = [], [], []
    for row in rows.to_pylist():
        sid = row["sample_id"]
        if sid in failed or sid not in by_sample:
            continue
        texts = by_sample[sid]
        got = Answers(sid, texts.get(0, ""), [texts[k] for k in sorted(texts) if k > 0])
        outcome, details = check.judge_all(row, got)
        decided.append((sid, outcome))
        extra.append(details)
        units.append(row["__unit"])
    table = outcome_table(decided)
    for f in MODEL_COLUMNS:
        table = table.append_column(f, pa.array([d[f.name] for d in extra], f.type))
    result = with_check_columns(table, check.name, check.version, run_id)
    return result.append_column("__unit", pa.array(units, pa.string()))


def reanswer_chunk(blocks: list[pa.Table], params: dict[str, Any], run_id: str, ray_data, use_vllm: bool,
                   resources: dict[str, float] | None = None) -> pa.Table:
    """The model check over a chunk's blocks (catalog rows + the shard column) on the cluster."""
    check = ReAnswer(params)
    rows = CheckContext().bind(pa.concat_tables(blocks)).sql(
        f"SELECT * FROM batch s WHERE {check.where}").to_arrow_table()  # the rows the check applies to
    passthrough = ("sample_id", KEY, "__unit")
    ds = ray_data.from_arrow(requests_of(rows, check.sampling().n))
    processor = vllm_processor(params, passthrough) if use_vllm else None
    return outcomes_from_answers(answer_on_ray(ds, params, passthrough, processor, resources), rows, check, run_id)
