"""Model-check throughput: does the check path keep the engine busy? Prints samples/s, prompt and generated tokens/s
and the engine's busy share for (a) the model check end to end (catalog rows -> media decoded and processed by worker
processes -> engine -> VST scoring) and (b) the same engine alone on prompts prepared beforehand (its ceiling), and
the ratio a/b (goal >= 0.9: the pipeline never starves the engine). Medians of --runs runs.

Models are Qwen2.5-VL of the real 3B / 7B architecture and size built from config alone (random weights, nothing
downloaded: bench.model_shapes) on a GPU, or the tiny one on CPU (--shape tiny, the default without CUDA); outputs have
a fixed length (EOS ignored); rows are the demo data set's image questions.

    python -m bench.model_throughput                       # CUDA: 3b and 7b; CPU: tiny
    python -m bench.model_throughput --shape 7b --rows 2048 --batch-size 64 --samples 4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.model_shapes import build_model
from curation.checks.base import CheckContext, rows_to_table
from curation.checks.model import ReAnswer
from curation.checks.model_engines import Sampling, TransformersEngine
from curation.checks.model_inputs import PreparePrompt, PromptStream
from curation.demo.generate import DemoConfig, build_demo
from curation.ingest.run import ingest
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.settings import load_settings


@dataclass
class Figures:
    samples: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    busy_s: float = 0.0  # inside the engine's generate
    gpu_util: float | None = None  # NVML's mean utilisation while it ran (CUDA only)

    def line(self, label: str) -> str:
        s = self.seconds or 1e-9
        util = f", GPU utilisation {self.gpu_util:.0%}" if self.gpu_util is not None else ""
        return (f"{label}: {self.samples / s:8.2f} samples/s, {self.prompt_tokens / s:9.0f} prompt tok/s, "
                f"{self.generated_tokens / s:8.0f} generated tok/s, engine busy {self.busy_s / s:.0%}{util} "
                f"({self.samples} samples in {self.seconds:.2f} s)")


class Counted:
    """The engine, summing the tokens of the answers that pass through it."""

    def __init__(self, inner):
        self.inner, self.name, self.wants_features = inner, inner.name, inner.wants_features
        self.prompt_tokens = self.generated_tokens = 0

    @property
    def busy_s(self) -> float:
        return self.inner.busy_s

    def generate(self, prompts, sampling):
        for a in self.inner.generate(prompts, sampling):
            self.prompt_tokens += a.prompt_tokens
            self.generated_tokens += a.generated_tokens
            yield a

    def close(self) -> None:
        pass  # the bench keeps the model for the next run


class Utilisation:
    """Mean GPU utilisation (NVML through torch) sampled every 50 ms while in use; None without CUDA or NVML."""

    def __init__(self, cuda: bool):
        self.cuda, self.samples, self._stop = cuda, [], threading.Event()

    def __enter__(self):
        if self.cuda:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        import torch

        while not self._stop.wait(0.05):
            try:
                self.samples.append(torch.cuda.utilization() / 100)
            except Exception:  # no NVML: the engine's busy share stands alone
                return

    def __exit__(self, *exc):
        self._stop.set()

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.samples) if self.samples else None


def demo_rows(work: Path, rows: int) -> list[dict]:
    """``rows`` image questions of the demo data set (repeated as needed), as the check reads them."""
    home = load_settings(work / "home").ensure_dirs()
    build_demo(work / "demo", DemoConfig(samples=max(200, rows), points_per_room=2000, cameras_per_room=4,
                                         benchmark_rooms=1), progress=False)
    ingest([work / "demo" / "vst_p", work / "demo" / "vst_r"], home, progress=False)
    q = CatalogQuery(home)
    try:
        found = q.page(FilterSpec(groups=["single", "multi"], has_problems=False), limit=max(rows, 50),
                       columns=list(ReAnswer.columns)).rows
    finally:
        q.close()
    found = [r for r in found if r["question"] and r["answer"]]
    out = [dict(found[i % len(found)], sample_id=f"{found[i % len(found)]['sample_id']}#{i}") for i in range(rows)]
    return out


def run_check(check: ReAnswer, engine: Counted, rows: list[dict], cuda: bool) -> Figures:
    """(a) the model check end to end on the rows (its worker processes already started: a check keeps them for
    every batch of its chunk of shards)."""
    batch = rows_to_table(rows)
    busy0, p0, g0 = engine.busy_s, engine.prompt_tokens, engine.generated_tokens
    with Utilisation(cuda) as util:
        t0 = time.perf_counter()
        out = check.run(batch, CheckContext())
        seconds = time.perf_counter() - t0
    return Figures(out.num_rows, seconds, engine.prompt_tokens - p0, engine.generated_tokens - g0,
                   engine.busy_s - busy0, util.mean)


def run_engine(engine: Counted, prompts: list, sampling: Sampling, cuda: bool) -> Figures:
    """(b) the engine alone on prompts decoded and processed beforehand."""
    busy0, p0, g0 = engine.busy_s, engine.prompt_tokens, engine.generated_tokens
    with Utilisation(cuda) as util:
        t0 = time.perf_counter()
        n = sum(1 for _ in engine.generate(iter(prompts), sampling))
        seconds = time.perf_counter() - t0
    return Figures(n, seconds, engine.prompt_tokens - p0, engine.generated_tokens - g0, engine.busy_s - busy0,
                   util.mean)


def median(figs: list[Figures]) -> Figures:
    mid = sorted(figs, key=lambda f: f.samples / (f.seconds or 1e-9))[len(figs) // 2]
    return mid


def bench_shape(shape: str, args, work: Path, rows: list[dict]) -> dict[str, Figures]:
    import torch

    cuda = torch.cuda.is_available() and shape != "tiny"
    device = "cuda" if cuda else "cpu"
    model_dir = work / f"model-{shape}"
    max_pixels = args.max_pixels or (1024 * 28 * 28 if cuda else 64 * 28 * 28)
    t0 = time.perf_counter()
    model = build_model(shape, model_dir, device=device, save=not cuda, max_pixels=max_pixels)
    engine = Counted(TransformersEngine(str(model_dir), device=device, batch_size=args.batch_size,
                                        model=None if not cuda else model))
    params = {"samples": args.samples, "temperature": 1.0, "max_new_tokens": args.max_new_tokens, "ignore_eos": True,
              "decode_workers": args.decode_workers, "prefetch": args.prefetch, "max_pixels": max_pixels}
    sampling = ReAnswer(params).sampling()
    print(f"[{shape}] model built on {device} in {time.perf_counter() - t0:.1f} s "
          f"({sum(p.numel() for p in engine.inner.model.parameters()) / 1e9:.2f} B parameters); "
          f"{len(rows)} rows, batch {args.batch_size}, {args.samples} samples + greedy, "
          f"{args.max_new_tokens} new tokens each, {args.decode_workers} decode workers")
    stream = PromptStream(PreparePrompt(str(model_dir), max_pixels=max_pixels), workers=0)
    prompts = [p for p in stream(rows) if p.error is None]
    run_engine(engine, prompts[: args.batch_size], sampling, cuda)  # warm-up (kernels, allocator)
    check = ReAnswer({**params, "model_path": str(model_dir)}, engine=engine)
    t0 = time.perf_counter()
    run_check(check, engine, rows[: args.batch_size], cuda)  # starts the decode workers (once per check)
    print(f"[{shape}] check start-up (decode worker processes, their processor) and one batch: "
          f"{time.perf_counter() - t0:.1f} s")
    ends, alones = [], []
    for _ in range(args.runs):
        alones.append(run_engine(engine, prompts, sampling, cuda))
        ends.append(run_check(check, engine, rows, cuda))
    check.close()
    a, b = median(ends), median(alones)
    print(a.line(f"[{shape}] (a) check end to end"))
    print(b.line(f"[{shape}] (b) engine alone     "))
    ratio = (a.samples / a.seconds) / (b.samples / b.seconds) if a.seconds and b.seconds and b.samples else 0.0
    print(f"[{shape}] a/b = {ratio:.2f} (goal >= 0.9)")
    engine.inner.close()
    del model
    if cuda:
        torch.cuda.empty_cache()
    return {"a": a, "b": b}


def main(argv: list[str] | None = None) -> dict[str, dict[str, Figures]]:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", action="append", choices=["tiny", "3b", "7b"],
                    help="model shape(s); default: 3b and 7b on CUDA, tiny on CPU")
    ap.add_argument("--rows", type=int, default=None, help="rows checked per run (default 1024 on CUDA, 48 on CPU)")
    ap.add_argument("--batch-size", type=int, default=None, help="engine micro-batch (default 64 on CUDA, 8 on CPU)")
    ap.add_argument("--samples", type=int, default=2, help="sampled answers per prompt besides the greedy one")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="fixed output length (default 32; CPU 4)")
    ap.add_argument("--decode-workers", type=int, default=2, help="CPU processes preparing prompts")
    ap.add_argument("--prefetch", type=int, default=256, help="prompts prepared ahead of the engine at most")
    ap.add_argument("--max-pixels", type=int, default=None,
                    help="image pixel budget (default 1024*28*28, CPU 64*28*28)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    shapes = args.shape or (["3b", "7b"] if cuda else ["tiny"])
    on_gpu = cuda and shapes != ["tiny"]
    args.rows = args.rows or (1024 if on_gpu else 48)
    args.batch_size = args.batch_size or (64 if on_gpu else 8)
    args.max_new_tokens = args.max_new_tokens or (32 if on_gpu else 4)
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"model throughput on {device}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="model-throughput-") as tmp:
        work = args.work or Path(tmp)
        rows = demo_rows(work, args.rows)
        return {shape: bench_shape(shape, args, work, rows) for shape in shapes}


if __name__ == "__main__":
    main()
