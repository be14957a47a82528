"""The engines a model check answers with, behind one interface: a stream of prompts in, answers out in order.

``generate(prompts, sampling)`` takes every prompt of a batch (a whole shard chunk) as one stream and keeps as many
in flight as the engine wants: vLLM's offline engine (GPU machines with requirements-gpu.txt) takes thousands per
call (each window's images are held in memory: max_in_flight x the pixel budget); transformers (CUDA or CPU) runs
left-padded micro-batches. Each prompt gets a greedy answer and, when
``sampling.n`` > 0, n sampled ones.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from curation.checks.model_inputs import Prompt, load_processor

BACKENDS = ("auto", "vllm", "transformers")


@dataclass(frozen=True)
class Sampling:
    """How each prompt is answered: greedily, plus ``n`` samples at ``temperature`` (pass rates)."""

    n: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    ignore_eos: bool = False  # fixed output length (benchmarks)
    seed: int = 0
    greedy: bool = True  # False: the n samples only (a cluster's request that asks for one sampled answer)


@dataclass
class Answers:
    """An engine's answers to one prompt: the greedy one first, then the samples; token counts for throughput."""

    key: str
    greedy: str
    samples: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    generated_tokens: int = 0


class AnswerEngine(Protocol):
    name: str
    wants_features: bool  # True: prompts carry the processor's arrays; False: their images
    busy_s: float  # seconds spent generating (the engine's own share of a run's time)

    def generate(self, prompts: Iterable[Prompt], sampling: Sampling) -> Iterator[Answers]: ...

    def close(self) -> None: ...


def collate(features: list[dict[str, np.ndarray]], pad_id: int) -> dict[str, np.ndarray]:
    """One batch from single-prompt processor outputs: sequence arrays left-padded (decoder-only models continue
    from the right), media arrays (patches, grids) concatenated along their first axis."""
    length = max(f["input_ids"].shape[-1] for f in features)
    out: dict[str, np.ndarray] = {}
    for key in features[0]:
        arrays = [f[key] for f in features]
        if all(a.ndim == 2 and a.shape[0] == 1 and a.shape[1] == f["input_ids"].shape[-1]
               for a, f in zip(arrays, features)):
            fill = pad_id if key == "input_ids" else 0
            out[key] = np.concatenate([np.pad(a, ((0, 0), (length - a.shape[1], 0)), constant_values=fill)
                                       for a in arrays])
        else:
            out[key] = np.concatenate(arrays)
    return out


class TransformersEngine:
    """transformers generate in left-padded micro-batches of ``batch_size`` prompts (bf16 on CUDA, fp32 on CPU)."""

    name = "transformers"
    wants_features = True

    def __init__(self, model_path: str, device: str | None = None, batch_size: int = 16, model=None):
        import torch
        from transformers import AutoModelForImageTextToText

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = load_processor(model_path)
        tokenizer = self.processor.tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.model = (model or AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype)).to(self.device)
        self.model.eval()
        self.batch_size = max(1, int(batch_size))
        self.busy_s = 0.0

    def generate(self, prompts: Iterable[Prompt], sampling: Sampling) -> Iterator[Answers]:
        it = iter(prompts)
        while batch := list(itertools.islice(it, self.batch_size)):
            yield from self._answer(batch, sampling)

    def _generate(self, inputs: dict, sampling: Sampling, sampled: bool):
        kwargs = {"max_new_tokens": sampling.max_new_tokens, "pad_token_id": self.pad_id}
        if sampling.ignore_eos:
            kwargs["min_new_tokens"] = sampling.max_new_tokens
        if sampled:
            self.torch.manual_seed(sampling.seed)
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                          num_return_sequences=sampling.n)
        else:
            kwargs.update(do_sample=False)
        t0 = time.perf_counter()
        with self.torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()
        self.busy_s += time.perf_counter() - t0
        new = out[:, inputs["input_ids"].shape[1]:]
        # A finished sequence is padded to the batch's length: its trailing pads were not generated.
        trailing = (new == self.pad_id).int().flip(1).cumprod(1).sum(1)
        counts = (new.shape[1] - trailing).tolist()
        return self.processor.batch_decode(new, skip_special_tokens=True), counts

    def _answer(self, batch: list[Prompt], sampling: Sampling) -> list[Answers]:
        arrays = collate([p.features for p in batch], self.pad_id)
        inputs = {k: self.torch.from_numpy(v).to(self.device) for k, v in arrays.items()}
        if "pixel_values" in inputs and self.device.startswith("cuda"):
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        greedy, greedy_tokens = self._generate(inputs, sampling, sampled=False) if sampling.greedy else (
            [""] * len(batch), [0] * len(batch))
        sampled, sampled_tokens = self._generate(inputs, sampling, sampled=True) if sampling.n else ([], [])
        n = sampling.n
        return [Answers(p.key, greedy[i].strip(), [s.strip() for s in sampled[i * n:(i + 1) * n]], p.prompt_tokens,
                        greedy_tokens[i] + sum(sampled_tokens[i * n:(i + 1) * n]))
                for i, p in enumerate(batch)]

    def close(self) -> None:
        self.model = None


class VLLMEngine:
    """vLLM's offline engine: ``max_in_flight`` prompts per ``LLM.generate`` call (its scheduler batches them
    continuously; images are processed by vLLM itself), greedy and sampled requests side by side."""

    name = "vllm"
    wants_features = False

    def __init__(self, model_path: str, max_in_flight: int = 2048, max_images: int = 8, max_model_len: int = 8192,
                 **engine_kwargs):
        from vllm import LLM

        self.llm = LLM(model=model_path, limit_mm_per_prompt={"image": max_images}, max_model_len=max_model_len,
                       **engine_kwargs)
        self.max_in_flight = max(1, int(max_in_flight))
        self.busy_s = 0.0

    def generate(self, prompts: Iterable[Prompt], sampling: Sampling) -> Iterator[Answers]:
        from vllm import SamplingParams

        greedy = SamplingParams(temperature=0.0, max_tokens=sampling.max_new_tokens, ignore_eos=sampling.ignore_eos)
        sampled = SamplingParams(n=max(1, sampling.n), temperature=sampling.temperature, top_p=sampling.top_p,
                                 max_tokens=sampling.max_new_tokens, ignore_eos=sampling.ignore_eos,
                                 seed=sampling.seed)
        it = iter(prompts)
        while window := list(itertools.islice(it, self.max_in_flight)):
            requests, params = [], []
            for p in window:
                request: dict = {"prompt": p.text}
                if p.images:
                    request["multi_modal_data"] = {"image": p.images}
                if sampling.greedy:
                    requests.append(request)
                    params.append(greedy)
                if sampling.n:
                    requests.append(request)
                    params.append(sampled)
            t0 = time.perf_counter()
            outputs = iter(self.llm.generate(requests, params, use_tqdm=False))
            self.busy_s += time.perf_counter() - t0
            for p in window:
                results = [next(outputs) for _ in range(int(sampling.greedy) + int(bool(sampling.n)))]
                greedy_out = results[0].outputs[0].text.strip() if sampling.greedy else ""
                samples = results[-1].outputs if sampling.n else []
                yield Answers(p.key, greedy_out, [s.text.strip() for s in samples],
                              len(results[0].prompt_token_ids or []),
                              sum(len(o.token_ids) for r in results for o in r.outputs))

    def close(self) -> None:
        self.llm = None


def vllm_usable() -> bool:
    """vLLM is installed (the GPU environment) and a CUDA device is there."""
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def make_engine(model_path: str, backend: str = "auto", batch_size: int = 16, max_in_flight: int = 2048):
    """The engine for a local model directory: vLLM where usable (or named), else transformers."""
    if backend not in BACKENDS:
        raise ValueError(f"model_backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "vllm" or (backend == "auto" and vllm_usable()):
        return VLLMEngine(model_path, max_in_flight=max_in_flight)
    return TransformersEngine(model_path, batch_size=batch_size)
