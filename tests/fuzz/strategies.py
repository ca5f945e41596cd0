"""Hypothesis strategies for everything a client sends the gateway, as the text it sends.

Documents are built as JSON *text*, not values, so that they can hold what Python's encoder never
writes: NaN, Infinity, 1e400, lone surrogates, deep nesting, 5000-digit integers, broken syntax.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import quote

import jwt
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.raw import forged_token

# Seeded by default, so a run of the suite is a run of the same examples; FUZZ_EXPLORE=1 draws
# new ones, ten times as many.
EXPLORE = os.environ.get("FUZZ_EXPLORE") == "1"


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples * 10 if EXPLORE else examples,
        derandomize=not EXPLORE,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


# JSON text

_HOSTILE_VALUES = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1" * 5000, "-" + "9" * 400,
    '"\\ud800"', '"\\udfff"', '"a\\udc00b"', '"\\ud83d\\ude00"', '"\\u0000"',
    "[" * 65 + "]" * 65, "[" * 3000 + "]" * 3000, '{"a":' * 70 + "1" + "}" * 70,
    "", "{", "]", "nul", "1.", ".5", "01", "0x10", "'a'", '"\\x41"', '"\\', "tru",
]  # fmt: skip


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
hostile_values = st.sampled_from(_HOSTILE_VALUES)
value_texts = st.one_of(json_values.map(_dump), hostile_values)


def object_text(fields: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """A JSON object of some of ``fields`` (name -> strategy of its value's text), in any order,
    sometimes with a field nobody asked for."""
    names = st.lists(st.sampled_from(sorted(fields)), unique=True) if fields else st.just([])

    @st.composite
    def build(draw: st.DrawFn) -> str:
        chosen = draw(names)
        pairs = [(name, draw(fields[name])) for name in chosen]
        if draw(st.integers(0, 9)) == 0:
            pairs.append((draw(st.text(max_size=8)), draw(value_texts)))
        return "{" + ",".join(f"{_dump(name)}:{value}" for name, value in pairs) + "}"

    return build()


def either(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """Mostly a plausible value (so that the checks behind the first one run), else anything."""
    return st.one_of(plausible.map(_dump), plausible.map(_dump), value_texts)


# What the gateway's parameters look like

NAMESPACES = ["chat", "tiny", "team", "feed", "job", "nope"]
names = st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)
channels = st.one_of(
    st.builds(lambda ns, name: f"{ns}:{name}", st.sampled_from(NAMESPACES), names),
    st.text(max_size=40),
)
_U64 = 2**64
offsets = st.one_of(
    st.builds(
        lambda ms, seq: f"{ms}-{seq}",
        st.integers(0, 2 * _U64) | st.sampled_from([_U64 - 1, _U64]),
        st.integers(0, 2 * _U64) | st.sampled_from([_U64 - 1, _U64]),
    ),
    st.from_regex(r"[0-9\u0660-\u0669-]{0,24}", fullmatch=True),
    st.just(""),
)
since = st.fixed_dictionaries({"epoch": offsets, "offset": offsets})
urls = st.one_of(
    st.sampled_from(["http://127.0.0.1:9/", "https://a.example/x?y=1", "http://[::1]:9/"]),
    st.builds(lambda rest: "http://" + rest, st.text(max_size=40)),
    st.text(max_size=60),
)
request_ids = st.from_regex(r"[A-Za-z0-9_.-]{1,130}", fullmatch=True) | st.text(max_size=20)


def tokens(secret: str) -> st.SearchStrategy[str]:
    """Connection tokens: valid ones, claims of the wrong type, wrong keys, garbage."""
    now = int(time.time())
    valid = st.builds(
        lambda user: jwt.encode({"sub": user, "channels": ["team:*"]}, secret, algorithm="HS256"),
        names,
    )
    claims = object_text(
        {
            "sub": either(names),
            "exp": either(st.integers(now - 10, now + 3600)),
            "nbf": either(st.integers(now - 10, now + 10)),
            "iat": either(st.integers(now - 10, now)),
            "iss": either(names),
            "aud": either(names),
            "channels": either(st.lists(channels, max_size=3)),
        }
    )
    forged = st.builds(forged_token, claims, st.sampled_from([secret, "wrong-secret"]))
    return st.one_of(valid, forged, st.text(max_size=60))


def rpc_params(secret: str) -> dict[str, st.SearchStrategy[str]]:
    """Each method's params as JSON object text."""
    channel, token = either(channels), either(tokens(secret))
    position, flag, limit = either(since), either(st.booleans()), either(st.integers(-5, 200))
    return {
        "connect": object_text({"token": token}),
        "subscribe": object_text({"channel": channel, "since": position, "token": token}),
        "unsubscribe": object_text({"channel": channel}),
        "publish": object_text({"channel": channel, "data": value_texts}),
        "submit": object_text(
            {"url": either(urls), "request_id": either(request_ids), "subscribe": flag}
        ),
        "history": object_text({"channel": channel, "since": position, "limit": limit}),
        "ping": object_text({}),
    }


request_ids_text = st.one_of(
    st.integers(-(2**63), 2**63).map(str),
    st.text(max_size=10).map(_dump),
    st.sampled_from(["null", "true", "1.5", "[]", "{}", "1" * 5000, "NaN", "1e400", '"\\ud800"']),
)


def frames(
    params: st.SearchStrategy[str], method: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    """A JSON-RPC request frame; now and then a broken envelope around it."""
    envelope = st.sampled_from(['"2.0"'] * 8 + ['"1.0"', "2", "null"])
    return st.builds(
        lambda version, request_id, name, body: (
            f'{{"jsonrpc":{version},"id":{request_id},"method":{name},"params":{body}}}'
        ),
        envelope,
        st.one_of(st.integers(0, 1000).map(str), request_ids_text),
        method,
        st.one_of(params, params, params, value_texts),
    )


methods = st.sampled_from(
    ["connect", "subscribe", "unsubscribe", "publish", "submit", "history", "ping"]
)
garbage_frames = st.one_of(
    frames(value_texts, st.text(max_size=12).map(_dump) | value_texts),
    value_texts,
    st.text(max_size=200),
    st.lists(value_texts, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
)


# HTTP

header_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
).map(lambda text: text.encode("latin-1"))
path_segments = st.one_of(request_ids, st.text(max_size=30)).map(lambda text: quote(text, safe=""))
