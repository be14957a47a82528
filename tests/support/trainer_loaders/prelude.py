"""What every trainer-loader script runs first inside .venv-trainers: offline settings, two import fixes for the CPU
torch build, a tiny Qwen2.5-VL processor built locally, and the report each script prints.

These scripts run in the trainers' own environment (not the app's): they import nothing of ours.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import sys
import types
from pathlib import Path

os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MODELSCOPE_OFFLINE="1",
                  TOKENIZERS_PARALLELISM="false", DISABLE_VERSION_CHECK="1", WANDB_MODE="disabled")

import torch  # noqa: E402

# PyPI's torchvision 0.28.0 (the release paired with torch 2.13) is a CUDA build: its C++ ops cannot load with the CPU
# torch, and its import then fails registering fake kernels for two ops that do not exist. Declaring their schemas
# lets the pure-Python parts (transforms, which transformers' and qwen_vl_utils' video code uses) import; the ops
# themselves stay unavailable, and nothing on the data paths calls them.
for _op in ("nms", "qnms"):
    torch.library.define(f"torchvision::{_op}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
# PyPI's torchaudio is a CUDA build too (libc10_cuda.so missing); LLaMA-Factory's mm_plugin imports it for audio,
# which no export of ours carries.
_audio = types.ModuleType("torchaudio")
_audio.__spec__ = importlib.machinery.ModuleSpec("torchaudio", loader=None)


def _no_audio(name: str):
    raise AttributeError(f"torchaudio.{name}: torchaudio is not installed in .venv-trainers (PyPI's build needs CUDA)")


_audio.__getattr__ = _no_audio
sys.modules.setdefault("torchaudio", _audio)

# Qwen2.5's special tokens at their real ids: ms-swift hard-codes the image and video pad ids (151655, 151656).
QWEN_SPECIAL = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|object_ref_start|>": 151646,
    "<|object_ref_end|>": 151647, "<|box_start|>": 151648, "<|box_end|>": 151649, "<|quad_start|>": 151650,
    "<|quad_end|>": 151651, "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655, "<|video_pad|>": 151656,
}  # fmt: skip
IMAGE_PAD_ID, VIDEO_PAD_ID, VISION_START_ID = 151655, 151656, 151652
# Qwen2-VL's chat template (system prompt by default; image and video items become their pad blocks).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "Which is closer to the camera, the chair or the table? Answer with the option's letter.",
    "What is the distance between the sofa and the lamp in meters? About 1.8 meters.",
    "These images show the same room from different viewpoints. Detect the 3D bounding boxes.",
    "How many chairs are in the video? The camera moves forward and turns left.",
    "<think>The lamp looks nearer, so the answer is A.</think> A",
    "system user assistant You are a helpful assistant. json bbox_3d label 0 1 2 3 4 5 6 7 8 9 . , : ; ? ! ( ) [ ] { }",
]


def build_tiny_qwen(out: Path) -> Path:
    """A Qwen2.5-VL processor folder (byte-level BPE tokenizer with Qwen's special tokens at their ids, Qwen2-VL
    image and video processors, chat template), made here with no download; small pixel limits keep tests fast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_CORPUS * 20, trainers.BpeTrainer(vocab_size=700, show_progress=False,
                                                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    # Reserved fillers up to Qwen's vocabulary size, so that the specials sit at Qwen's ids with no holes between.
    vocab.update({f"<|reserved_{i}|>": i for i in range(len(vocab), min(QWEN_SPECIAL.values()))})
    vocab.update(QWEN_SPECIAL)
    spec["added_tokens"] = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True} for t, i in QWEN_SPECIAL.items()]
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE)
    assert fast.convert_tokens_to_ids("<|image_pad|>") == IMAGE_PAD_ID, "special tokens not at Qwen's ids"
    pixels = {"min_pixels": 4 * 28 * 28, "max_pixels": 64 * 28 * 28}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(**pixels),
        video_processor=Qwen2VLVideoProcessor(min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28),
        tokenizer=fast, chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(out)
    fast.save_pretrained(out)
    # A model config (no weights): trainers read the model type and the vision token ids from it.
    Qwen2_5_VLConfig(
        text_config={"vocab_size": len(fast), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32768,
                     "bos_token_id": QWEN_SPECIAL["<|endoftext|>"], "eos_token_id": QWEN_SPECIAL["<|im_end|>"]},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64},
        image_token_id=IMAGE_PAD_ID, video_token_id=VIDEO_PAD_ID, vision_start_token_id=VISION_START_ID,
        vision_end_token_id=QWEN_SPECIAL["<|vision_end|>"]).save_pretrained(out)
    return out


def report(path: str | Path, **fields) -> None:
    """Write the script's findings (JSON) where the test reads them."""
    Path(path).write_text(json.dumps(fields, indent=1, default=str), encoding="utf-8")


def video_frames(source):
    """Four frames of a video (a path or the MP4's bytes), read with decord as qwen_vl_utils does."""
    import io

    import decord

    reader = decord.VideoReader(io.BytesIO(source) if isinstance(source, bytes) else source)
    return reader.get_batch(list(range(0, len(reader), max(1, len(reader) // 4)))[:4]).asnumpy()


def token_problem(processor, messages: list[dict], images: list, videos: list, n_media: int) -> str | None:
    """Run the processor on a chat; a problem when it does not give one vision block per media item, each with the
    pad tokens its pixels make."""
    text = processor.apply_chat_template(messages, tokenize=False)
    inputs = processor(text=[text], images=images or None, videos=videos or None, return_tensors="pt")
    tokens = inputs["input_ids"][0].tolist()
    merge = processor.image_processor.merge_size ** 2
    expect_image = int(inputs["image_grid_thw"].prod(-1).sum()) // merge if images else 0
    expect_video = int(inputs["video_grid_thw"].prod(-1).sum()) // merge if videos else 0
    got = (tokens.count(IMAGE_PAD_ID), tokens.count(VIDEO_PAD_ID), tokens.count(VISION_START_ID))
    return None if got == (expect_image, expect_video, n_media) else \
        f"tokens {got}, expected {(expect_image, expect_video, n_media)}"


def loader_arguments() -> argparse.ArgumentParser:
    """Every loader's command line: EXPORT PROCESSOR REPORT (a loader may add its own options)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("export")
    ap.add_argument("processor")
    ap.add_argument("report")
    return ap
