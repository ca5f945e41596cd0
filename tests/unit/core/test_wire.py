from __future__ import annotations

import json

import pytest
from websockets.frames import Frame, Opcode

from pushgate.core.errors import PushgateError
from pushgate.core.wire import (
    Publication,
    close_reason,
    frame_size,
    job_channel,
    job_ws_path,
    new_request_id,
    parse_json,
    parse_offset,
    text_frame,
    validate_request_id,
    validate_url,
)


@pytest.mark.parametrize("value", ["a", "A-z_0.9", "x" * 128, "job.2026-11-21_abc"])
def test_valid_request_ids(value: str) -> None:
    assert validate_request_id(value) == value


@pytest.mark.parametrize("value", ["", "x" * 129, "a b", "a/b", "é", "a:b", 12, None, ["a"]])
def test_invalid_request_ids(value: object) -> None:
    with pytest.raises(PushgateError) as caught:
        validate_request_id(value)
    assert caught.value.code == "invalid_request_id"


def test_generated_request_ids_are_valid_and_distinct() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for request_id in ids:
        assert validate_request_id(request_id) == request_id
        assert len(request_id) >= 22  # 128 random bits


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "https://example.com/a?b=c#d",
        "http://127.0.0.1:8080/x",
        "http://[::1]:80/",
        "HTTPS://EXAMPLE.COM/",
    ],
)
def test_valid_urls(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "example.com",
        "/relative",
        "ftp://example.com/",
        "javascript:alert(1)",
        "http://",
        "http:///path",
        "http://exa mple.com/",
        "http://example.com/\n",
        "http://[::1/",
        "http://example.com:99999/",
        "http://example.com:0/",
        "http://example.com/" + "a" * 2048,
        42,
        None,
        {"url": "http://example.com"},
    ],
)
def test_invalid_urls(url: object) -> None:
    with pytest.raises(PushgateError) as caught:
        validate_url(url)
    assert caught.value.code == "invalid_url"


def test_offsets_order_numerically_not_lexically() -> None:
    assert parse_offset("9-0") < parse_offset("10-0")
    assert parse_offset("10-2") < parse_offset("10-10")
    assert parse_offset("1700000000000-5") == (1700000000000, 5)


@pytest.mark.parametrize(
    "value",
    [
        "", "1", "1-", "-1", "a-b", "1-2-3", "1.5-0", " 1-0",
        "18446744073709551616-0", "0-18446744073709551616", "99999999999999999999-0",
        "18446744073709551615-18446744073709551615",  # a stream id, but nothing can follow it
        "\u0661-\u0660", "\uff11-0",  # digits of other scripts: int() reads them, Redis does not
    ],
)  # fmt: skip
def test_malformed_offsets(value: str) -> None:
    with pytest.raises(PushgateError) as caught:
        parse_offset(value)
    assert caught.value.code == "invalid_offset"


def test_offsets_span_the_stream_id_range() -> None:
    top = 2**64 - 1
    assert parse_offset(f"{top}-0") == (top, 0)
    assert parse_offset(f"0-{top}") == (0, top)
    assert parse_offset(f"{top}-{top - 1}") == (top, top - 1)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("NaN", "invalid_json_value"),
        ('{"a": [Infinity]}', "invalid_json_value"),
        ("-Infinity", "invalid_json_value"),
        ("1e400", "invalid_json_value"),
        ("-" + "9" * 400 + ".0", "invalid_json_value"),  # a float by its dot, beyond a double
        ('"\\ud800"', "invalid_json_value"),
        ('{"\\udc00": 1}', "invalid_json_value"),
        ('["a", {"b": "x\\uDFFFy"}]', "invalid_json_value"),
        ("[" * 65 + "]" * 65, "malformed_json"),
        ("[" * 30000 + "]" * 30000, "malformed_json"),
        ("1" * 5000, "malformed_json"),
        (b'"\xed\xa0\x80"', "malformed_json"),  # a surrogate, UTF-8 encoded: not UTF-8
        (b"\xff", "malformed_json"),
        ("{", "malformed_json"),
    ],
)
def test_parse_json_refuses_what_strict_parsers_would_not_read_alike(
    text: str | bytes, code: str
) -> None:
    with pytest.raises(PushgateError) as caught:
        parse_json(text, "body")
    assert caught.value.code == code


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("[" * 64 + "]" * 64, nested(64)),
        ('"\\ud83d\\ude00"', "\U0001f600"),  # a surrogate pair is one character
        ('"\\ud7ff\\ue000"', "\ud7ff\ue000"),  # either side of the surrogates
        ("1e308", 1e308),
        ("1e-400", 0.0),
        ("1" * 400, int("1" * 400)),
        ('{"[": "{{{{"}', {"[": "{{{{"}),
    ],
)
def test_parse_json_takes_strict_json(text: str, value: object) -> None:
    assert parse_json(text, "body") == value


def test_frame_sizes_are_bytes() -> None:
    assert frame_size({"text": "\U0001f600" * 10}) == 40
    assert frame_size({"bytes": b"abc"}) == 3
    assert frame_size({"text": None, "bytes": None}) == 0


def test_job_names() -> None:
    assert job_channel("abc") == "job:abc"
    assert job_ws_path("abc") == "/ws/jobs/abc"


def test_publication_frame_embeds_the_published_json() -> None:
    payload = '{"type":"result","links":["http://a/\\u00e9"],"title":"q\\"uote"}'
    publication = Publication('job:a"b', "5-1", "4-0", payload)
    frame = json.loads(publication.job_frame)
    assert frame == {"channel": 'job:a"b', "offset": "5-1", "data": json.loads(payload)}
    assert publication.data["type"] == "result"
    assert publication.key == (5, 1)
    assert publication.job_frame is publication.job_frame  # encoded once


def test_close_reasons_fit_a_close_frame() -> None:
    assert close_reason("short") == "short"
    long = "é" * 100  # 200 bytes
    cut = close_reason(long)
    assert len(cut.encode()) <= 123
    assert long.startswith(cut)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frames_match_the_websockets_library(size: int) -> None:
    payload = b"x" * size
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame(payload) == expected
