"""The error table and close-code policy are complete, consistent, and what clients and docs use."""

from __future__ import annotations

import re
from pathlib import Path

from pushgate.client.wire import should_reconnect
from pushgate.core.errors import (
    CLOSE_POLICY,
    JSON_RPC_ONLY,
    RETRYABLE_RPC_CODES,
    CloseCode,
    ErrorKind,
    Reconnect,
    RpcCode,
)

ROOT = Path(__file__).resolve().parents[3]


def test_every_code_is_one_row() -> None:
    assert len(ErrorKind.__members__) == len(list(ErrorKind))  # no row is an alias of another
    codes = [kind.code for kind in ErrorKind]
    assert len(codes) == len(set(codes))
    assert all(kind.name.lower() == kind.code for kind in ErrorKind)


def test_kinds_sharing_a_json_rpc_code_agree_on_retrying() -> None:
    for kind in ErrorKind:
        assert (kind.rpc_code in RETRYABLE_RPC_CODES) == kind.retry, kind


def test_every_close_code_has_a_policy() -> None:
    assert set(CLOSE_POLICY) == set(CloseCode)
    assert {kind.close_code for kind in ErrorKind} <= set(CloseCode)


def test_python_client_follows_the_policy() -> None:
    for code, policy in CLOSE_POLICY.items():
        expected = policy.reconnect is Reconnect.YES
        assert should_reconnect(code, renewable_token=False) is expected, code
    assert should_reconnect(CloseCode.UNAUTHORIZED, renewable_token=True)
    assert should_reconnect(None, renewable_token=False)  # died without a close frame
    assert should_reconnect(1006, renewable_token=False)


def test_browser_module_lists_the_final_close_codes() -> None:
    source = (ROOT / "gateway/static/pushgate.js").read_text()
    block = re.search(r"FINAL_CLOSE_CODES = new Map\(\[(.*?)\]\);", source, re.S)
    assert block is not None
    listed = {int(code) for code in re.findall(r"\[(\d{4}),", block[1])}
    final = {code for code, policy in CLOSE_POLICY.items() if policy.reconnect is not Reconnect.YES}
    assert listed == final


def test_browser_module_retries_exactly_the_retryable_codes() -> None:
    source = (ROOT / "gateway/static/pushgate.js").read_text()
    block = re.search(r"const TRANSIENT_ERRORS = new Set\(\[(.*?)\]\);", source)
    assert block is not None
    assert {int(code) for code in block[1].split(",")} == RETRYABLE_RPC_CODES


def test_protocol_doc_close_table_matches_the_policy() -> None:
    doc = (ROOT / "docs/protocol.md").read_text()
    section = doc.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d{4}) \| [^|]+ \| ([^|]+) \|$", section, re.M))
    assert {int(code) for code in rows} == set(CloseCode)
    for code, answer in rows.items():
        reconnect = CLOSE_POLICY[CloseCode(int(code))].reconnect
        expected = {Reconnect.YES: "yes", Reconnect.NO: "no", Reconnect.WITH_NEW_TOKEN: "only"}
        assert answer.strip().startswith(expected[reconnect]), (code, answer)


def test_readme_http_error_table_matches_the_statuses() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d{3}) \| (`[^|]+`) \|", readme, re.M)
    documented = {
        code: int(status) for status, codes in rows for code in re.findall(r"`(\w+)`", codes)
    }
    http_codes = {kind.code for kind in ErrorKind if kind not in JSON_RPC_ONLY}
    assert set(documented) >= http_codes
    for code, status in documented.items():
        assert ErrorKind[code.upper()].http_status == status, code


def test_protocol_doc_lists_every_json_rpc_code() -> None:
    doc = (ROOT / "docs/protocol.md").read_text()
    section = doc.split("## Errors", 1)[1].split("\n## ", 1)[0]
    listed = {int(code) for code in re.findall(r"^\| (-32\d{3}) \|", section, re.M)}
    assert listed == {int(code) for code in RpcCode}
