"""The filter codec: a Browse link, a query string or URL parameters become one FilterSpec, or one error naming
the parameter that does not parse."""

from __future__ import annotations

import pytest

from curation.query.filters import FilterParamError, FilterSpec, spec_from_link


@pytest.mark.parametrize("text", [
    "http://127.0.0.1:8501/Browse?skills=si_distance,si_depth&flagged=0&id=x",
    "?skills=si_distance,si_depth&flagged=0",
    "skills=si_distance,si_depth&flagged=0",
])
def test_a_link_a_query_string_and_a_bare_query_give_the_same_filter(text):
    assert spec_from_link(text) == FilterSpec(skills=["si_distance", "si_depth"], flagged=False)


@pytest.mark.parametrize(("params", "param"), [
    ({"review": "maybe"}, "review"),
    ({"skills": "si_distance", "score_below": "duplicates.near:high"}, "score_below"),
])
def test_a_bad_value_names_its_parameter(params, param):
    with pytest.raises(FilterParamError, match=f"bad value in `{param}`") as info:
        FilterSpec.from_query_params(params)
    assert info.value.param == param


def test_a_link_without_a_filter_is_refused():
    for text in ("", "http://127.0.0.1:8501/Browse", "?page=2"):
        with pytest.raises(ValueError, match="no filter"):
            spec_from_link(text)
    with pytest.raises(FilterParamError, match="`review`"):
        spec_from_link("?review=maybe")
