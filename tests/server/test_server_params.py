"""Parameter checks shared by every protocol."""

from __future__ import annotations

import pytest

from csmstream.errors import BadRequest
from csmstream.server.params import build_request, parse_params, parse_request_id, parse_text, parse_voice_id


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": -1},
        {"temperature": 0},
        {"temperature": "hot"},
        {"temperature": True},
        {"temperature": float("nan")},
        {"topk": 0},
        {"topk": 1.5},
        {"topk": 5000},
        {"seed": -1},
        {"seed": "7"},
        {"max_seconds": 0},
        {"max_seconds": -3},
        {"greedy": "yes"},
    ],
)
def test_bad_params_are_bad_requests(fields):
    with pytest.raises(BadRequest, match=next(iter(fields))):
        parse_params(fields)


def test_good_params_reach_the_engine_request():
    params = parse_params({"temperature": 0.7, "topk": 20.0, "seed": 9, "max_seconds": 2, "greedy": False})
    request = build_request("Hello.", "default", params, request_id="r")
    assert (request.text, request.voice_id, request.request_id, request.max_seconds) == (
        "Hello.",
        "default",
        "r",
        2,
    )
    assert request.sampling.temperature == 0.7 and request.sampling.topk == 20 and request.sampling.seed == 9
    assert request.sampling.greedy is False


def test_absent_params_leave_the_engine_defaults():
    request = build_request("Hello.", None, parse_params({}), request_id="r")
    assert request.sampling is None and request.max_seconds is None


@pytest.mark.parametrize("value", [None, "", "   ", 3, ["a"]])
def test_text_must_be_a_non_empty_string(value):
    with pytest.raises(BadRequest):
        parse_text(value)


def test_voice_and_request_ids():
    assert parse_voice_id(None) is None and parse_voice_id("") is None and parse_voice_id("x") == "x"
    with pytest.raises(BadRequest):
        parse_voice_id(5)
    assert parse_request_id("mine") == "mine"
    assert parse_request_id(None) != parse_request_id(None), "the server makes a fresh id each time"
    with pytest.raises(BadRequest):
        parse_request_id("x" * 500)
