"""Labeling configs per sample kind: what the annotator sees (media, question, answer, trace) and answers."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from xml.sax.saxutils import quoteattr


class SampleKind(StrEnum):
    """How a sample is shown in Label Studio; one project (and one config) per kind."""

    SINGLE_IMAGE = "single_image"
    MULTI_IMAGE = "multi_image"
    VIDEO_FRAMES = "video_frames"
    REASONING = "reasoning_review"
    TEXT_ONLY = "text_only"

    @property
    def title(self) -> str:
        return _TITLES[self]


_TITLES = {
    SampleKind.SINGLE_IMAGE: "single image",
    SampleKind.MULTI_IMAGE: "multi-image",
    SampleKind.VIDEO_FRAMES: "video frames",
    SampleKind.REASONING: "reasoning review",
    SampleKind.TEXT_ONLY: "text only",
}

# What an annotator can say about a sample (shown labels) -> the review verdict stored locally.
VERDICTS: dict[str, str] = {
    "correct": "correct",
    "wrong answer": "wrong_answer",
    "bad reasoning": "bad_reasoning",
    "bad media": "bad_media",
    "ambiguous": "ambiguous",
}
VERDICT_LABELS: dict[str, str] = {code: label for label, code in VERDICTS.items()}
_HINTS = {
    "correct": "the stored answer (and trace) are right",
    "wrong answer": "the answer is wrong: type the right one below",
    "bad reasoning": "the answer is right but the reasoning trace is not",
    "bad media": "the image/video is broken, missing or does not match",
    "ambiguous": "the question cannot be answered from the media",
}

# Control names: the pull side reads annotations by these.
VERDICT_CONTROL = "verdict"
FIX_CONTROL = "fixed_answer"
NOTE_CONTROL = "note"
# The object tag every control points at (always present, whatever the kind).
ANCHOR = "question"


def sample_kind(row: Mapping[str, Any]) -> SampleKind:
    """The kind a catalog row is reviewed as: a reasoning trace wins over the media it comes with."""
    if row.get("has_reasoning") or row.get("reasoning"):
        return SampleKind.REASONING
    group = row.get("sample_group")
    n_videos = row.get("n_videos") or 0
    n_images = row.get("n_images") or 0
    if group == "video" or n_videos:
        return SampleKind.VIDEO_FRAMES
    if group == "multi" or n_images > 1:
        return SampleKind.MULTI_IMAGE
    if n_images == 1 or group == "single":
        return SampleKind.SINGLE_IMAGE
    return SampleKind.TEXT_ONLY


def _media_block(kind: SampleKind) -> str:
    if kind is SampleKind.SINGLE_IMAGE:
        return '<Image name="image" value="$image" zoom="true" zoomControl="true"/>'
    if kind is SampleKind.TEXT_ONLY:
        return ""
    header = "Video frames (evenly spaced)" if kind is SampleKind.VIDEO_FRAMES else "Images"
    # valueList shows a list of URLs with a pager: one task, several images.
    return f'<Header value="{header}" size="5"/>\n      <Image name="images" valueList="$images" zoom="true"/>'


def labeling_config(kind: SampleKind) -> str:
    """The Label Studio XML for a kind. Task data keys: sample_id, skill, question, answer, reasoning,
    image (single) or images (list of URLs), media_note."""
    choices = "\n".join(
        f"        <Choice value={quoteattr(label)} hint={quoteattr(_HINTS[label])}/>" for label in VERDICTS
    )
    reasoning = ""
    if kind is SampleKind.REASONING:
        reasoning = (
            '\n      <Header value="Reasoning trace" size="5"/>'
            '\n      <Text name="reasoning" value="$reasoning"/>'
        )
    media = _media_block(kind)
    return f"""<View>
  <Header value="VST sample review ({kind.title})"/>
  <View style="display: flex; gap: 1em; align-items: flex-start">
    <View style="flex: 3; min-width: 0">
      {media}
      <Text name="media_note" value="$media_note"/>
    </View>
    <View style="flex: 2; min-width: 0">
      <Text name="sample" value="$sample_id"/>
      <Text name="skill" value="$skill"/>
      <Header value="Question" size="5"/>
      <Text name="{ANCHOR}" value="$question"/>
      <Header value="Stored answer" size="5"/>
      <Text name="answer" value="$answer"/>{reasoning}
      <Header value="Verdict" size="5"/>
      <Choices name="{VERDICT_CONTROL}" toName="{ANCHOR}" choice="single-radio" required="true">
{choices}
      </Choices>
      <Header value="Corrected answer (only when the answer is wrong)" size="6"/>
      <TextArea name="{FIX_CONTROL}" toName="{ANCHOR}" maxSubmissions="1" editable="true" rows="2"/>
      <Header value="Note" size="6"/>
      <TextArea name="{NOTE_CONTROL}" toName="{ANCHOR}" maxSubmissions="1" editable="true" rows="2"/>
    </View>
  </View>
</View>
"""


def verdict_result(label: str, fixed_answer: str | None = None, note: str | None = None) -> list[dict[str, Any]]:
    """An annotation/prediction ``result`` in this config's vocabulary (used for predictions and tests)."""
    if label not in VERDICTS:
        raise ValueError(f"unknown verdict {label!r}; expected one of {', '.join(VERDICTS)}")
    result: list[dict[str, Any]] = [
        {"from_name": VERDICT_CONTROL, "to_name": ANCHOR, "type": "choices", "value": {"choices": [label]}}
    ]
    for name, text in ((FIX_CONTROL, fixed_answer), (NOTE_CONTROL, note)):
        if text:
            result.append({"from_name": name, "to_name": ANCHOR, "type": "textarea", "value": {"text": [text]}})
    return result
