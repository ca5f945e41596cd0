"""Result tables: printed one per workload, and saved together as JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    digits: int = 0  # decimals of a float; ignored for other values


@dataclass
class Table:
    workload: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pushgate: str = ""  # the commit pushgate's code was at when the workload started


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(table: Table) -> str:
    headers = [c.header for c in table.columns]
    cells = [[_cell(row.get(c.key), c.digits) for c in table.columns] for row in table.rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row.get(c.key), int | float) or row.get(c.key) is None for row in table.rows)
        for c in table.columns
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    version = f" [pushgate {table.pushgate}]" if table.pushgate else ""
    out = [f"== {table.title}{version}", line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    out += [f"  note: {note}" for note in table.notes]
    notes_by_row = [
        (row.get("system_label") or row.get("system"), row.get("notes")) for row in table.rows
    ]
    for label, notes in notes_by_row:
        for note in notes or []:
            out.append(f"  {label}: {note}")
    return "\n".join(out)


def compare(
    rows: Sequence[Row],
    *,
    key: str,
    label: str,
    higher_is_better: bool,
    is_subject: Callable[[Row], bool],
    is_peer: Callable[[Row], bool],
    same_group: Callable[[Row, Row], bool] = lambda a, b: True,
) -> None:
    """Append "<label> <ratio>x" to each subject row's ``vs_peer``, against its best peer row.

    The ratio is subject/peer for higher-is-better metrics and peer/subject otherwise, so above
    1.00x always means pushgate leads.
    """
    for row in rows:
        if not is_subject(row) or row.get(key) is None:
            continue
        peers = [
            p[key] for p in rows if is_peer(p) and same_group(row, p) and p.get(key) is not None
        ]
        if not peers:
            continue
        best = max(peers) if higher_is_better else min(peers)
        mine = float(row[key])
        if higher_is_better:
            value = mine / best if best else math.inf
        else:
            value = best / mine if mine else math.inf
        text = f"{label} {value:.2f}x"
        row["vs_peer"] = f"{row['vs_peer']}, {text}" if row.get("vs_peer") else text
        row.setdefault("vs_peer_ratios", {})[key] = value


def save(path: Path, meta: dict[str, Any], tables: Sequence[Table]) -> None:
    body = {"meta": meta, "workloads": {t.workload: asdict(t) for t in tables}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1, default=str) + "\n")
    tmp.replace(path)
