"""A model check's inputs, made ahead of the engine: media decoded, resized to the model's pixel budget and (for
transformers) run through the processor by CPU worker processes, streamed in row order through a bounded window."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from curation.media.sample_media import decode_image, sample_frames, smart_resize
from curation.vst.vocabulary import IMAGE_PAD, VIDEO_PAD
from db.media import read_media_bytes

log = logging.getLogger(__name__)
VIDEO_FRAMES = 4
DEFAULT_MAX_PIXELS = 512 * 28 * 28  # when the model's processor states no budget: enough for spatial questions


@dataclass
class Prompt:
    """One row made ready for an engine: the chat-formatted text and either its images (vLLM processes them itself)
    or the processor's arrays (transformers); ``error`` says why the row's media could not be had."""

    key: str
    text: str = ""
    images: list[Image.Image] = field(default_factory=list)
    features: dict[str, np.ndarray] | None = None
    error: str | None = None

    @property
    def prompt_tokens(self) -> int:
        return int(self.features["input_ids"].shape[-1]) if self.features is not None else 0


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


def pixel_budget(processor) -> tuple[int, int]:
    """(min_pixels, max_pixels) the model's image processor resizes to; its own numbers, else the default."""
    ip = getattr(processor, "image_processor", None)
    size = getattr(ip, "size", None) or {}
    low = getattr(ip, "min_pixels", None) or size.get("shortest_edge") or 4 * 28 * 28
    high = getattr(ip, "max_pixels", None) or size.get("longest_edge") or DEFAULT_MAX_PIXELS
    return int(low), int(high)


def chat_text(processor, question: str, n_images: int) -> str:
    """The question as the model's chat prompt, one image slot per image, ending where the answer starts."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": question})
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)


def fit(im: Image.Image, min_pixels: int, max_pixels: int) -> Image.Image:
    """An image at the size the model's processor would give it (Qwen's rule), so the processor does not resize."""
    im = im.convert("RGB")
    h, w = smart_resize(im.height, im.width, min_pixels=min_pixels, max_pixels=max_pixels)
    return im if (w, h) == im.size else im.resize((w, h), Image.Resampling.BICUBIC)


def sample_images(row: dict[str, Any], min_pixels: int, max_pixels: int, video_frames: int = VIDEO_FRAMES,
                  media_roots: Iterable[str] = ()) -> list[Image.Image]:
    """The images the model sees for a row: each image, and a few evenly spaced frames of each video."""
    out: list[Image.Image] = []
    for i, item in enumerate(row.get("media") or []):
        data = read_media_bytes(row, i, media_roots)
        if item.get("kind") == "video":
            out.extend(fit(f, min_pixels, max_pixels) for f in sample_frames(data, video_frames))
        else:
            out.append(fit(decode_image(data, row, i), min_pixels, max_pixels))
    return out


_PROCESSORS: dict[str, Any] = {}  # per process: a worker loads the model's processor once


@dataclass(frozen=True)
class PreparePrompt:
    """Picklable work for a CPU worker: a catalog row -> Prompt. ``features``: also run the processor (transformers
    engines take its arrays; vLLM takes the images)."""

    model_path: str
    features: bool = True
    video_frames: int = VIDEO_FRAMES
    max_pixels: int | None = None  # below the model's own budget, to bound the cost of a check
    media_roots: tuple[str, ...] = ()

    def processor(self):
        if self.model_path not in _PROCESSORS:
            _PROCESSORS[self.model_path] = load_processor(self.model_path)
        return _PROCESSORS[self.model_path]

    def __call__(self, row: dict[str, Any]) -> Prompt:
        key = str(row["sample_id"])
        processor = self.processor()
        low, high = pixel_budget(processor)
        if self.max_pixels:
            high = max(low, min(high, int(self.max_pixels)))
        try:
            images = sample_images(row, low, high, self.video_frames, self.media_roots)
        except Exception as exc:  # unreadable media: the media checks report it; the model check skips the row
            return Prompt(key, error=f"{type(exc).__name__}: {exc}")
        return make_prompt(processor, key, row.get("question") or "", images, self.features)


def make_prompt(processor, key: str, question: str, images: list[Image.Image], features: bool) -> Prompt:
    """A Prompt from a question and its (already fitted) images: the chat text, and the processor's arrays when
    ``features``."""
    text = chat_text(processor, question, len(images))
    if not features:
        return Prompt(key, text, images)
    kwargs: dict[str, Any] = {"text": [text], "return_tensors": "np"}
    if images:
        kwargs["images"] = [images]
    arrays = {k: np.asarray(v) for k, v in processor(**kwargs).items()}
    return Prompt(key, text, features=arrays)


def _spawn_init() -> None:
    # Each worker is one of several processes on the machine: one thread of torch/numpy math each.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


class PromptStream:
    """Rows -> Prompts in row order, made by ``workers`` spawned processes (0: in this process), at most ``window``
    rows ahead of what the engine has taken: the engine never waits while the workers keep up, and memory stays
    bounded whatever the number of rows."""

    def __init__(self, prepare: Callable[[dict[str, Any]], Prompt], workers: int = 2, window: int = 256):
        self.prepare = prepare
        self.workers = max(0, int(workers))
        self.window = max(1, int(window))
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[Prompt]:
        if self.workers == 0:
            yield from map(self.prepare, rows)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_spawn_init)
        pending: deque[Future] = deque()
        it = iter(rows)
        for row in it:
            pending.append(self._pool.submit(self.prepare, row))
            if len(pending) >= self.window:
                break
        for row in it:
            yield pending.popleft().result()
            pending.append(self._pool.submit(self.prepare, row))
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
