"""A curator inspects reasoning traces: the think block, the answer after it, format reward and the trace's verdict."""

import pytest

from curation.vst.reasoning import format_reward, last_boxed, reasoning_conclusion, split_reasoning

GOOD = "<think>The chair is 1.2 m away and the table 2.5 m, so the chair is closer. So the answer is B.</think> B"


def test_a_well_formed_cot_target_splits_into_trace_and_answer():
    parts = split_reasoning(GOOD)
    assert parts.reasoning.startswith("The chair is 1.2 m away")
    assert parts.final == "B"
    assert (parts.think_open, parts.think_close) == (1, 1)
    assert parts.well_formed
    assert format_reward(GOOD) == 1.0


def test_duplicated_think_tags_are_counted_and_fail_the_format():
    text = "<think>first try</think><think>second try, the answer is C</think> C"
    parts = split_reasoning(text)
    assert (parts.think_open, parts.think_close) == (2, 2)
    assert parts.reasoning == "first try\nsecond try, the answer is C"
    assert parts.final == "C"
    assert not parts.well_formed
    assert format_reward(text) == 0.0


def test_a_missing_open_tag_keeps_the_trace_but_is_not_well_formed():
    parts = split_reasoning("the chair is closer</think> B")
    assert parts.reasoning == "the chair is closer"
    assert parts.final == "B"
    assert not parts.well_formed
    assert format_reward("the chair is closer</think> B") == 0.0


def test_a_missing_close_tag_leaves_the_whole_text_as_final_like_upstream():
    parts = split_reasoning("<think>the chair is closer. B")
    assert parts.reasoning == "the chair is closer. B"
    assert parts.final == "<think>the chair is closer. B"
    assert (parts.think_open, parts.think_close) == (1, 0)
    assert not parts.well_formed


def test_nothing_after_the_trace_or_text_before_it_is_not_well_formed():
    assert not split_reasoning("<think>thinking</think>   ").well_formed
    assert format_reward("<think>thinking</think>   ") == 0.0
    preamble = "Sure! <think>thinking</think> B"
    assert not split_reasoning(preamble).well_formed
    assert format_reward(preamble) == 1.0  # upstream only counts blocks and the text after them


def test_a_plain_answer_has_no_trace():
    parts = split_reasoning("B")
    assert parts.reasoning is None and parts.final == "B" and not parts.well_formed
    assert format_reward("B") == 0.0
    assert format_reward("") == 0.0


@pytest.mark.parametrize(
    ("trace", "conclusion"),
    [
        ("The chair is nearer. So the answer is B.", "B"),
        ("Adding the halves gives the answer is 1.8 meters.", "1.8 meters"),
        ("Both are on the left. Therefore, B.", "B"),
        ("Summing up we get \\boxed{42}.", "42"),
        ("So the result is \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("Answer: C\nWait, I misread the tv. Answer: D", "D"),  # the last conclusion wins
        ("Each option is plausible at first. The correct option is (C).", "C"),
        ("The answer is: **A**", "A"),
        ("The final answer is 3.", "3"),
        ("Counting them one by one, thus 4 chairs.", "4 chairs"),
    ],
)
def test_the_trace_states_its_conclusion(trace, conclusion):
    assert reasoning_conclusion(trace) == conclusion


@pytest.mark.parametrize(
    "trace",
    [
        "The chair is closer than the table.",
        "Each option is plausible; let me look again.",
        "I also think the sofa is large.",
        "",
        None,
    ],
)
def test_a_trace_without_a_conclusion_states_none(trace):
    assert reasoning_conclusion(trace) is None


def test_a_long_trace_finds_its_conclusion_at_the_end():
    trace = "So the answer is A. " + "Looking again at the wall and the lamp. " * 40 + "So the answer is C."
    assert reasoning_conclusion(trace) == "C"
    early_only = "So the answer is A. " + "Looking again at the wall and the lamp. " * 40
    assert reasoning_conclusion(early_only) == "A"


def test_boxed_content_keeps_nested_braces():
    assert last_boxed("x \\boxed{\\frac{1}{2}} y \\boxed{3}") == "3"
    assert last_boxed("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{unclosed") is None
    assert last_boxed("no box") is None
