"""The format's vocabulary: conversation roles, media placeholder tokens, think tags and media problem codes."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Conversation roles. LLaVA-style shards say human/gpt, chat-style ones user/assistant: both are read alike. An answer
# turn is any turn that is neither a human turn nor the system prompt (upstream writes gpt; others are kept as found).
HUMAN_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant")
SYSTEM_ROLE = "system"
# The roles readers write when a source has a question and an answer instead of turns (VST RL).
HUMAN, ASSISTANT = "human", "gpt"

# Media placeholders in turn text: VST's (Qwen-VL's pad tokens) and LLaVA-style tags, one per media item.
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
IMAGE_TAG, VIDEO_TAG = "<image>", "<video>"
IMAGE_PLACEHOLDERS = (IMAGE_PAD, IMAGE_TAG)
VIDEO_PLACEHOLDERS = (VIDEO_PAD, VIDEO_TAG)
PLACEHOLDERS = (IMAGE_PAD, VIDEO_PAD, IMAGE_TAG, VIDEO_TAG)


def alternation(tokens: Iterable[str]) -> str:
    """A regex (Python's and DuckDB's RE2 alike) matching any of ``tokens`` literally."""
    return "|".join(re.escape(t) for t in tokens)


PLACEHOLDER_RE = re.compile(alternation(PLACEHOLDERS))


def placeholders_replaced_sql(text: str, by: str = "''") -> str:
    """DuckDB: the SQL expression ``text`` with every placeholder replaced by ``by`` (literal replaces: cheaper than
    a regex over millions of rows)."""
    for token in PLACEHOLDERS:
        text = f"replace({text}, '{token}', {by})"
    return text


# The reasoning trace of an answer: <think>...</think>, then the final answer.
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# Why a media item cannot be shown (media[].problem in the catalog; ingest tags a sample's problems
# ``media_<code>``). UNDECODABLE and UNREADABLE are followed by ": <the decoder's or the OS's words>", OUTSIDE_ROOTS
# by ": <where the path resolves>". Every one of them keeps the item out of exports and Label Studio.
NO_PATH = "no_path"
MISSING_FILE = "missing_file"
UNDECODABLE = "undecodable"
UNREADABLE = "unreadable"
OUTSIDE_ROOTS = "outside_roots"  # resolves (symlinks followed) outside the shard's folder tree and the media roots


def sql_list(values: Iterable[str]) -> str:
    """A SQL list literal for ``IN``: ('human', 'user')."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def human_turn_sql(turn: str = "t") -> str:
    """DuckDB: whether turn struct ``turn`` is a human (question) turn."""
    return f"{turn}.role IN {sql_list(HUMAN_ROLES)}"


def answer_turn_sql(turn: str = "t") -> str:
    """DuckDB: whether turn struct ``turn`` is an answer turn (neither human nor system)."""
    return f"{turn}.role NOT IN {sql_list((*HUMAN_ROLES, SYSTEM_ROLE))}"
