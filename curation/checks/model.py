"""Model checks: a vision-language model re-answers each question from the sample's media; disagreement is a fail.

The model is a local Hugging Face directory (Qwen2.5-VL family first), never downloaded. On a GPU machine with the
optional vLLM extra it runs through vLLM's offline engine; otherwise through transformers on CUDA or CPU. Images are
decoded and resized by a pool of CPU threads one batch ahead, so the accelerator is not kept waiting.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PIL import Image

from curation.checks.base import BatchCheck, Outcome
from curation.checks.consistency import agreement
from curation.checks.registry import register
from curation.vst.reasoning import split_reasoning
from curation.vst.vocabulary import IMAGE_PAD, VIDEO_PAD
from db.media import read_media_bytes

log = logging.getLogger(__name__)
MAX_PIXELS = 512 * 28 * 28  # resize before the processor: enough for spatial questions, cheap on CPU
VIDEO_FRAMES = 4


def _resize(im: Image.Image, max_pixels: int) -> Image.Image:
    im = im.convert("RGB")
    if im.width * im.height > max_pixels:
        scale = math.sqrt(max_pixels / (im.width * im.height))
        im = im.resize((max(28, int(im.width * scale)), max(28, int(im.height * scale))), Image.Resampling.BILINEAR)
    return im


def _video_frames(data: bytes, n: int) -> list[Image.Image]:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    if not frames:
        raise ValueError("video has no frames")
    step = max(1, len(frames) // n)
    return frames[::step][:n]


def sample_images(row: dict[str, Any], max_pixels: int = MAX_PIXELS, video_frames: int = VIDEO_FRAMES,
                  media_roots: Iterable[str] = ()) -> list[Image.Image]:
    """The images the model sees for a row: each image, and a few evenly spaced frames of each video."""
    out: list[Image.Image] = []
    for i, item in enumerate(row.get("media") or []):
        data = read_media_bytes(row, i, media_roots)
        if item.get("kind") == "video":
            out.extend(_resize(f, max_pixels) for f in _video_frames(data, video_frames))
        else:
            with Image.open(io.BytesIO(data)) as im:
                out.append(_resize(im, max_pixels))
    return out


def load_processor(model_path: str):
    """The model's processor; for Qwen2.5-VL without torchvision (CPU wheels) it is built from its image parts,
    since transformers' AutoProcessor insists on a video processor that needs torchvision."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(model_path)
    except (ImportError, OSError, ValueError, AttributeError, TypeError) as exc:
        log.info("AutoProcessor unavailable for %s (%s); building an image-only processor", model_path, exc)
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwenProcessor(Qwen2_5_VLProcessor):
        """Qwen2.5-VL's processor without its video part (videos are passed as frames)."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = getattr(tokenizer, "image_token", None) or IMAGE_PAD
            self.video_token = getattr(tokenizer, "video_token", None) or VIDEO_PAD
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(model_path)
    return ImageOnlyQwenProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                  chat_template=tokenizer.chat_template)


def _messages(question: str, n_images: int) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": question})
    return [{"role": "user", "content": content}]


class TransformersBackend:
    """Batched greedy generation with transformers (CUDA when available, else CPU)."""

    name = "transformers"

    def __init__(self, model_path: str, device: str | None = None, max_new_tokens: int = 64):
        import torch
        from transformers import AutoModelForImageTextToText

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.processor = load_processor(model_path)
        self.processor.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        self.max_new_tokens = max_new_tokens

    def generate(self, questions: list[str], images: list[list[Image.Image]]) -> list[str]:
        import torch

        texts = [self.processor.apply_chat_template(_messages(q, len(ims)), add_generation_prompt=True, tokenize=False)
                 for q, ims in zip(questions, images)]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if any(images):
            kwargs["images"] = [ims for ims in images]
        inputs = self.processor(**kwargs).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]


class VLLMBackend:
    """vLLM's offline engine (GPU machines with the optional extra, requirements-gpu.txt)."""

    name = "vllm"

    def __init__(self, model_path: str, max_new_tokens: int = 64, max_images: int = 8):
        from vllm import LLM, SamplingParams

        self.processor = load_processor(model_path)
        self.llm = LLM(model=model_path, limit_mm_per_prompt={"image": max_images}, max_model_len=8192)
        self.sampling = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)

    def generate(self, questions: list[str], images: list[list[Image.Image]]) -> list[str]:
        prompts = []
        for q, ims in zip(questions, images):
            text = self.processor.apply_chat_template(_messages(q, len(ims)), add_generation_prompt=True,
                                                      tokenize=False)
            prompts.append({"prompt": text, "multi_modal_data": {"image": ims}} if ims else {"prompt": text})
        return [o.outputs[0].text.strip() for o in self.llm.generate(prompts, self.sampling, use_tqdm=False)]


def make_backend(model_path: str, backend: str = "auto", max_new_tokens: int = 64):
    if backend in ("auto", "vllm"):
        try:
            import torch
            import vllm  # noqa: F401

            if torch.cuda.is_available():
                return VLLMBackend(model_path, max_new_tokens)
        except ImportError:
            if backend == "vllm":
                raise
    return TransformersBackend(model_path, max_new_tokens=max_new_tokens)


@register
class ReAnswer(BatchCheck):
    name = "model.reanswer"
    description = ("A local vision-language model (params model_path) answers the question from the media; its answer "
                   "is scored against the stored one with the sample's metric. Opt-in: needs --model PATH.")
    applies_to = "samples with a question and an answer"
    columns = ("sample_id", "question", "answer", "answer_kind", "rl_modes", "media", "source_file", "row_group",
               "row_in_group")
    where = "s.question IS NOT NULL AND length(trim(s.question)) > 0 AND s.answer IS NOT NULL"
    cost = "model"
    needs_gpu = True
    default = False
    score_meaning = "agreement of the model's answer with the stored answer (metric in the reason)"

    def __init__(self, params: dict[str, Any] | None = None):
        super().__init__(params)
        self._backend = None
        self._pool = ThreadPoolExecutor(max_workers=int(self.params.get("decode_workers", 2)))

    def backend(self):
        if self._backend is None:
            path = self.params.get("model_path")
            if not path:
                raise ValueError("model.reanswer needs params model_path (python -m curation check --model PATH)")
            self._backend = make_backend(str(path), self.params.get("model_backend", "auto"),
                                         int(self.params.get("max_new_tokens", 64)))
        return self._backend

    def _decode(self, rows: list[dict[str, Any]]) -> list[list[Image.Image] | Exception]:
        out: list[list[Image.Image] | Exception] = []
        for row in rows:
            try:
                out.append(sample_images(row, int(self.params.get("max_pixels", MAX_PIXELS)),
                                         int(self.params.get("video_frames", VIDEO_FRAMES)),
                                         self.params.get("media_roots", ())))
            except Exception as exc:  # unreadable media: the media checks report it; here the row is skipped
                out.append(exc)
        return out

    def _batches(self, rows: list[dict[str, Any]], size: int) -> Iterator[tuple[list[dict], list]]:
        """Batches with their decoded images, the next batch decoding on CPU threads while this one generates."""
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        pending: Future | None = self._pool.submit(self._decode, chunks[0]) if chunks else None
        for k, chunk in enumerate(chunks):
            images = pending.result() if pending is not None else []
            pending = self._pool.submit(self._decode, chunks[k + 1]) if k + 1 < len(chunks) else None
            yield chunk, images

    def check_batch(self, rows: list[dict[str, Any]]) -> list[Outcome | None]:
        backend = self.backend()
        results: dict[str, Outcome | None] = {}
        for chunk, images in self._batches(rows, int(self.params.get("model_batch_size", 8))):
            ok = [(r, ims) for r, ims in zip(chunk, images) if not isinstance(ims, Exception)]
            for r, ims in zip(chunk, images):
                if isinstance(ims, Exception):
                    results[r["sample_id"]] = None
            if not ok:
                continue
            answers = backend.generate([r["question"] for r, _ in ok], [ims for _, ims in ok])
            for (row, _), raw in zip(ok, answers):
                results[row["sample_id"]] = self.judge(row, raw)
        return [results.get(r["sample_id"]) for r in rows]

    @staticmethod
    def judge(row: dict[str, Any], model_output: str) -> Outcome:
        said = split_reasoning(model_output).final or model_output
        stored = row.get("answer") or ""
        score, metric, agrees = agreement(said, stored, question=row.get("question") or "",
                                          answer_kind=row.get("answer_kind"), rl_modes=row.get("rl_modes"))
        if agrees:
            return Outcome(True, score, f"model answered {said[:60]!r} ({metric} {score:.2f})")
        return Outcome(False, score, f"model answered {said[:60]!r}, the stored answer is {stored[:60]!r} "
                                     f"({metric} {score:.2f})")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._backend = None
