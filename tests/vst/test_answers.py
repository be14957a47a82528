"""A curator reads answers: which options a question offers, which letter was picked, which number and unit."""

import pytest

from curation.vst.answers import NumberAnswer, classify_answer, extract_choice, parse_number, parse_options, to_meters

MC_QUESTION = (
    "<|image_pad|>\nIf you stand at the sofa facing the tv, where is the lamp?\n"
    "A: front\nB: back\nC: left\nD: right\nAnswer with the option's letter from the given choices directly."
)


def test_options_are_read_from_lines_in_every_common_style():
    assert parse_options(MC_QUESTION) == {"A": "front", "B": "back", "C": "left", "D": "right"}
    assert parse_options("Which?\nA. red chair\nB. blue chair") == {"A": "red chair", "B": "blue chair"}
    assert parse_options("Which?\n(A) 2 m\n(B) 3 m\n(C) 4 m") == {"A": "2 m", "B": "3 m", "C": "4 m"}
    assert parse_options("Options: A. front B. back C. left") == {"A": "front", "B": "back", "C": "left"}


def test_text_that_only_looks_like_options_offers_none():
    assert parse_options("How far is the chair from the table?") == {}
    assert parse_options("I. think the chair\nQ: is it red?") == {}  # letters must run A, B, ...
    assert parse_options("B: back\nC: left") == {}  # no A
    assert parse_options("A: only one option") == {}


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("b", "B"),  # a lone letter in any case is exact
        ("`C`", "C"),  # backticks removed
        ("The answer is ``D``.", "D"),  # quoted pick wins over the article-free capital
        ("A.", "A"),
        ("(D) right", "D"),
        ("A: front", "A"),
        ("**B**", "B"),
        ("The answer is B.", "B"),
        ("A bike is behind, so B", "B"),  # "A bike" is an article, not a pick
    ],
)
def test_the_picked_letter_is_extracted(answer, letter):
    assert extract_choice(answer) == letter


@pytest.mark.parametrize("answer", ["A dog", "Because", "front", "", "G", "none of them", "a cat"])
def test_no_letter_is_extracted_when_none_is_picked(answer):
    # Letters inside words, articles before a word, letters past F and lower-case articles are not picks.
    assert extract_choice(answer) is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("3.5", NumberAnswer(3.5, None)),
        ("3.5 m", NumberAnswer(3.5, "m")),
        ("152 cm", NumberAnswer(152.0, "cm")),
        ("about 1.8 meters", NumberAnswer(1.8, "m")),
        ("1,200", NumberAnswer(1200.0, None)),
        ("2.5km", NumberAnswer(2.5, "km")),
        ("12 mm", NumberAnswer(12.0, "mm")),
        ("6 in", NumberAnswer(6.0, "in")),
        ("5 ft 6 in", NumberAnswer(5.5, "ft")),
        ("-0.25", NumberAnswer(-0.25, None)),
        ("two", NumberAnswer(2.0, None)),
        ("The distance is 3 metres.", NumberAnswer(3.0, "m")),
    ],
)
def test_numbers_and_their_units_are_read(answer, expected):
    assert parse_number(answer) == expected


def test_number_parsing_does_not_invent_units_or_numbers():
    assert parse_number("3 in the room") == NumberAnswer(3.0, None)  # "in" is a preposition here
    assert parse_number("3 minutes") == NumberAnswer(3.0, None)  # "m" must stand alone
    assert parse_number("the one on the left is 2 m") == NumberAnswer(2.0, "m")  # digits beat number words
    assert parse_number("chair") is None
    assert parse_number("") is None


def test_lengths_convert_to_metres_so_cm_and_m_compare():
    assert to_meters(152, "cm") == pytest.approx(1.52)
    assert to_meters(1.52, "m") == pytest.approx(1.52)
    assert to_meters(1, "ft") == pytest.approx(0.3048)
    assert to_meters(3, "km") == pytest.approx(3000)
    assert to_meters(3, None) is None
    assert to_meters(3, "parsec") is None


@pytest.mark.parametrize(
    ("answer", "question", "kind"),
    [
        ('```json\n[{"bbox_3d": [0.1, 0.2, 2.0, 0.5, 0.9, 0.5, 0.0, 0.1, 0.0], "label": "chair"}]\n```', "", "bbox3d"),
        ("<3dbbox>0.1 0.2 2 0.5 0.9 0.5 0 0 0</3dbbox>", "", "bbox3d"),
        ("front", MC_QUESTION, "choice"),  # the question offers options
        ("B", "Which is closer?", "choice"),  # a lone letter
        ("3.5", "", "number"),
        ("152 cm", "How tall is the lamp?", "number"),
        ("about 1.8 meters.", "", "number"),
        ("chair", "Which is closer to the camera, the chair or the table?", "text"),
        ("3 chairs and 2 tables", "", "text"),
        ("A dog", "", "text"),
    ],
)
def test_answers_are_classified(answer, question, kind):
    assert classify_answer(answer, question) == kind
