"""Qwen2.5-VL models of a real shape (3B, 7B) or a tiny one, from their config alone: random weights, a small BPE
tokenizer trained on the spot, Qwen's image processor; nothing downloaded (bench.model_throughput, tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]
CHAT = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
        "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
        "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# Qwen2.5-VL-3B-Instruct and -7B-Instruct's published config.json, the numbers that set size and cost.
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"text": dict(vocab_size=None, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0, mrope_section=[2, 3, 3],
                          tie_word_embeddings=False),
             "vision": dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, fullatt_block_indexes=[1])},
    "3b": {"text": dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                        num_attention_heads=16, num_key_value_heads=2, rope_theta=1000000.0,
                        mrope_section=[16, 24, 24], tie_word_embeddings=True),
           "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                          fullatt_block_indexes=[7, 15, 23, 31])},
    "7b": {"text": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                        num_attention_heads=28, num_key_value_heads=4, rope_theta=1000000.0,
                        mrope_section=[16, 24, 24], tie_word_embeddings=False),
           "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                          fullatt_block_indexes=[7, 15, 23, 31])},
}


def build_processor_dir(out: Path, max_pixels: int = 64 * 28 * 28):
    """A tokenizer (BPE trained on a few sentences, Qwen's special tokens, Qwen's chat template) and Qwen's PIL image
    processor, saved in ``out``; returns the tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2VLImageProcessorPil

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["Which is closer to the camera, the chair or the table?", "What is 2+3? The answer is 5.",
              "A B C D 0 1 2 3 4 5 6 7 8 9 user assistant"] * 10
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHAT)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    Qwen2VLImageProcessorPil(min_pixels=4 * 28 * 28, max_pixels=max_pixels).save_pretrained(out)
    return fast


def qwen25vl_config(shape: str, tokenizer):
    """The Qwen2.5-VL config of ``shape``, its special tokens at the tokenizer's ids."""
    from transformers import Qwen2_5_VLConfig

    spec = SHAPES[shape]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    text = dict(spec["text"])
    rope = {"rope_type": "default", "rope_theta": text.pop("rope_theta"), "mrope_section": text.pop("mrope_section")}
    tie = text.pop("tie_word_embeddings")
    text["vocab_size"] = text["vocab_size"] or len(tokenizer)
    text.update(max_position_embeddings=32768, rope_parameters=rope, bos_token_id=ids["<|endoftext|>"],
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=tie)
    vision = dict(spec["vision"], out_hidden_size=text["hidden_size"], window_size=112, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tie,
                            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])


def build_model(shape: str, out: Path, device: str = "cpu", dtype=None, save: bool = True,
                max_pixels: int = 64 * 28 * 28):
    """A random Qwen2.5-VL of ``shape`` with its processor in ``out``; the model itself saved there too when
    ``save`` (the tiny one: the check's real loading path), else returned built on ``device`` only."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    tokenizer = build_processor_dir(out, max_pixels)
    config = qwen25vl_config(shape, tokenizer)
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    torch.manual_seed(0)  # the same weights every time: tests and bench runs repeat
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    if save:
        model.save_pretrained(out)
    return model.eval()
