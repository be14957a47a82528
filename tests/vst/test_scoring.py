"""A curator scores answers the way VST's RL reward does, and the way VSI-Bench does."""

import json

import pytest

from curation.vst.scoring import (
    VALID_RL_MODES,
    anls_score,
    bbox3d_score,
    math_score,
    mra_score,
    multi_choice_score,
    relaxed_score,
    rl_reward,
    score_by_mode,
    score_by_modes,
    vqa_score,
)

CHAIR = [0.5, 0.1, 2.0, 0.5, 0.9, 0.5, 0.0, 0.0, 0.0]
TABLE = [-0.8, 0.3, 3.1, 1.2, 0.75, 0.8, 0.0, 0.0, 0.0]


def fenced(*boxes):
    return "```json\n" + json.dumps([{"bbox_3d": b, "label": lab} for lab, b in boxes]) + "\n```"


@pytest.mark.parametrize(
    ("prediction", "truth", "score"),
    [
        ("B", "B", 1.0),
        ("b", "B", 1.0),
        ("B. back", "B", 1.0),
        ("`B`", "B", 1.0),
        ("The answer is C.", "B", 0.0),
        ("A dog", "A", 0.0),  # an article, not a pick
        ("front", "A", 0.0),  # no letter at all
        ("A. 8 o'clock", "A. 8 o'clock", 1.0),
    ],
)
def test_multiple_choice(prediction, truth, score):
    assert multi_choice_score(prediction, truth) == score


@pytest.mark.parametrize(
    ("prediction", "truth", "score"),
    [
        ("3.6", "3.5", 1.0),  # 2.9% off
        ("3.8", "3.5", 0.0),  # 8.6% off
        ("2024", "2023", 0.0),  # a year must match exactly, 0.05% off or not
        ("2023", "2023", 1.0),
        ("20.6", "20.5", 1.0),  # four characters starting with 20, but not a year
        ("152 cm", "1.5 m", 1.0),  # lengths compare in metres
        ("152", "1.5", 0.0),  # without units 152 is not 1.5
        ("50%", "51%", 1.0),
        ("1,200", "1200", 1.0),
        ("0", "0", 1.0),
        ("0.1", "0", 0.0),
        ("chair", "Chair", 1.0),  # text needs an exact match
        ("3 chairs", "3", 0.0),
        ("", "3", 0.0),
    ],
)
def test_relaxed_numbers(prediction, truth, score):
    assert relaxed_score(prediction, truth) == score


def test_anls_is_the_standard_similarity_not_upstreams_inverted_distance():
    assert anls_score("Coca Cola", "coca  cola") == 1.0
    assert anls_score("coca colo", "coca cola") == pytest.approx(1 - 1 / 9)
    assert anls_score("pepsi", "coca cola") == 0.0  # far apart scores 0, where upstream would give a high value
    assert anls_score("abcd", "abxy") == 0.0  # distance exactly 0.5 is cut off
    assert anls_score("", "") == 1.0


@pytest.mark.parametrize(
    ("prediction", "truth"),
    [
        ("0.5", "\\frac{1}{2}"),
        ("\\boxed{\\frac{1}{2}}", "\\boxed{0.5}"),
        ("1/2", "\\dfrac{1}{2}"),
        ("x = 5", "5"),
        ("$12$", "12"),
        ("\\sqrt{2}/2", "\\frac{1}{\\sqrt{2}}"),
        ("2x+2", "2(x+1)"),
        ("30^\\circ", "30"),
        ("1,000", "1000"),
        ("3, 1", "1, 3"),
        ("2\\pi", "2*pi"),
    ],
)
def test_math_equivalence(prediction, truth):
    assert math_score(prediction, truth) == 1.0


@pytest.mark.parametrize(
    ("prediction", "truth"),
    [
        ("0.51", "\\frac{1}{2}"),
        ("2x+1", "2(x+1)"),
        ("3", "1, 3"),
        ("__import__('os').system('true')", "0"),  # never reaches a parser that evaluates code
        ("9^9^9^9", "1"),  # a power tower is refused, not computed
        ("", "1"),
        ("anything", ""),
    ],
)
def test_math_non_equivalence(prediction, truth):
    assert math_score(prediction, truth) == 0.0


def test_vqa_normalised_exact_match():
    assert vqa_score("The Chair.", "chair") == 1.0
    assert vqa_score("two", "2") == 1.0
    assert vqa_score("a red sofa", "red sofa") == 1.0
    assert vqa_score("sofa", "chair") == 0.0
    assert vqa_score("", "") == 0.0


def test_bbox3d_perfect_partial_and_wrong_label():
    truth = fenced(("chair", CHAIR), ("table", TABLE))
    assert bbox3d_score(truth, truth) == pytest.approx(1.0)
    # One of two found exactly: IoU sum 1 / 2 GT, precision 1, recall 0.5, F1 2/3.
    assert bbox3d_score(fenced(("chair", CHAIR)), truth) == pytest.approx(0.5 * 0.5 + 0.5 * (2 / 3))
    # The right place under the wrong name does not pair.
    assert bbox3d_score(fenced(("sofa", CHAIR)), fenced(("chair", CHAIR))) == 0.0


def test_bbox3d_a_shifted_box_below_the_threshold_earns_only_its_iou():
    shifted = [CHAIR[0] + 0.35, *CHAIR[1:]]  # 0.15 of 0.5 width overlaps: IoU 0.15/0.85
    score = bbox3d_score(fenced(("chair", shifted)), fenced(("chair", CHAIR)))
    assert score == pytest.approx(0.5 * (0.15 / 0.85))


def test_bbox3d_pairs_one_to_one_and_penalises_extra_boxes():
    truth = fenced(("chair", CHAIR))
    doubled = fenced(("chair", CHAIR), ("chair", CHAIR))
    # Precision 1/2, recall 1: F1 2/3; the IoU term divides by the one truth box.
    assert bbox3d_score(doubled, truth) == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))


def test_bbox3d_with_junk_or_nothing():
    truth = fenced(("chair", CHAIR))
    assert bbox3d_score("I cannot see any chair.", truth) == 0.0
    assert bbox3d_score('```json\n[{"bbox_3d": [0.5, 0.1', truth) == 0.0
    assert bbox3d_score("```json\n[]\n```", "[]") == 1.0
    assert bbox3d_score(truth, "[]") == 0.0
    assert bbox3d_score(truth, [{"bbox_3d": CHAIR, "label": "chair"}]) == pytest.approx(1.0)  # upstream passes lists


def test_mean_relative_accuracy_over_ten_thresholds():
    assert mra_score(2.0, 2.0) == 1.0
    assert mra_score(2.2, 2.0) == pytest.approx(0.9)  # 10% off: passes θ = 0.50 ... 0.90
    assert mra_score(1.0, 2.0) == pytest.approx(0.1)  # 50% off: only θ = 0.50
    assert mra_score(5.0, 2.0) == 0.0
    assert mra_score("2.2 m", "2") == pytest.approx(0.9)
    assert mra_score("no idea", 2.0) == 0.0  # unparsable scores 0
    assert mra_score(float("nan"), 2.0) == 0.0
    assert mra_score(0, 0) == 1.0


def test_modes_dispatch_and_unknown_modes_are_refused():
    assert set(VALID_RL_MODES) == {
        "vqa_score", "relaxed_score", "anls_score", "math_score", "multi_choices_score", "bbox3d",
    }  # fmt: skip
    assert score_by_mode("multi_choices_score", "B.", "B") == 1.0
    assert score_by_mode("relaxed_score", "3.6", "3.5") == 1.0
    assert score_by_mode("vqa_score", "CHAIR", "chair") == 1.0  # exact case-insensitive match first
    assert score_by_mode("math_score", "\\boxed{4}", "\\boxed{4.0}") == 1.0
    assert score_by_mode("anls_score", "coca cola", "coca cola") == 1.0
    assert score_by_mode("bbox3d", fenced(("chair", CHAIR)), fenced(("chair", CHAIR))) == pytest.approx(1.0)
    assert score_by_modes(["vqa_score", "relaxed_score"], "3.6", "3.5") == 1.0
    with pytest.raises(ValueError, match="multi_choice_score"):
        score_by_mode("multi_choice_score", "B", "B")  # the RL mode is spelt multi_choices_score
    with pytest.raises(ValueError):
        score_by_modes([], "B", "B")


def test_rl_reward_is_half_accuracy_half_format():
    assert rl_reward("<think>closer is the chair</think> B", "B", "multi_choices_score") == 1.0
    assert rl_reward("<think>closer is the chair</think> C", "B", "multi_choices_score") == 0.5
    assert rl_reward("B", "B", ["multi_choices_score"]) == 0.5  # right, but no trace
    assert rl_reward("<think>a</think><think>b</think> B", "B", "multi_choices_score") == 0.5  # duplicated tags
    assert rl_reward("<think>the chair</think>", "B", "multi_choices_score") == 0.0
    box_response = "<think>one chair</think>" + fenced(("chair", CHAIR))
    assert rl_reward(box_response, fenced(("chair", CHAIR)), "bbox3d") == pytest.approx(1.0)


def test_bbox3d_of_rotated_boxes_against_themselves_stays_within_one():
    rotated = [
        ("lamp", [0.23, 0.14, 3.89, 0.39, 1.52, 0.38, 0.08, -0.2, -0.05]),
        ("door", [-1.88, -0.32, 4.83, 0.81, 2.05, 0.06, 0.09, -0.24, -0.06]),
    ]
    score = bbox3d_score(fenced(*rotated), fenced(*rotated))
    assert 0.99 <= score <= 1.0
