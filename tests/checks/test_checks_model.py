"""The model check runs a real (tiny, random) Qwen2.5-VL from a local folder: load, prompt, generate, judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.checks.model import ReAnswer, load_processor
from curation.ingest.run import ingest
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from tests.support.shards import small_vst_tree

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]
CHAT = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
        "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
        "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tiny_qwen25vl(out: Path) -> Path:
    """A randomly initialised Qwen2.5-VL of ~200k parameters with its own small BPE tokenizer (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["Which is closer to the camera, the chair or the table?", "What is 2+3? The answer is 5.",
              "A B C D 0 1 2 3 4 5 6 7 8 9 user assistant"] * 10
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHAT)
    ids = {t: fast.convert_tokens_to_ids(t) for t in SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           fullatt_block_indexes=[1], window_size=112),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(out)
    fast.save_pretrained(out)
    Qwen2VLImageProcessorPil(min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-qwen") / "model")


def test_processor_builds_without_torchvision(tiny_model):
    processor = load_processor(str(tiny_model))
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                                                           "text": "Hi"}]}],
                                         add_generation_prompt=True, tokenize=False)
    assert "<|image_pad|>" in text and text.endswith("<|im_start|>assistant\n")


@pytest.mark.slow
def test_the_model_re_answers_from_the_images_and_disagreement_fails(tiny_model, home, tmp_path):
    ingest([small_vst_tree(tmp_path / "src")], home, progress=False)
    q = CatalogQuery(home)
    rows = q.page(FilterSpec(groups=["single"]), limit=20, columns=list(ReAnswer.columns) + ["n_images"]).rows
    q.close()
    check = ReAnswer({"model_path": str(tiny_model), "max_new_tokens": 4, "model_batch_size": 2})
    outcomes = check.check_batch(rows)
    check.close()
    assert len(outcomes) == len(rows) >= 4
    for row, outcome in zip(rows, outcomes):
        assert outcome is not None and outcome.reason.startswith("model answered ")
        if not outcome.passed:  # a random model disagrees: both answers are in the reason
            assert repr(row["answer"][:60]) in outcome.reason


def test_judging_uses_the_samples_metric():
    row = {"question": "Which is closer?\nA: chair\nB: table", "answer": "B", "answer_kind": "choice"}
    assert ReAnswer.judge(row, "<think>The table is nearer.</think> B").passed
    bad = ReAnswer.judge(row, "A")
    assert not bad.passed and bad.reason == "model answered 'A', the stored answer is 'B' (choice 0.00)"
