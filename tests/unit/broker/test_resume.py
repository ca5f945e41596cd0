"""When does the stored history still cover a client's position? (``backend.covers``)"""

from __future__ import annotations

import pytest

from pushgate.broker.store import covers

E = "100-0"  # current epoch: the first offset of the current history


@pytest.mark.parametrize(
    ("since_epoch", "since", "epoch", "trimmed", "expected"),
    [
        (E, (150, 0), E, "", True),  # same epoch, nothing trimmed
        (E, (150, 0), E, "140-0", True),  # trimmed only what the client already had
        (E, (140, 0), E, "140-0", True),
        (E, (130, 0), E, "140-0", False),  # trimmed past the client's position
        ("90-0", (95, 0), E, "", False),  # another epoch: that history is gone
        ("90-0", (95, 0), "", "", False),  # no history at all any more
        ("", None, "", "", True),  # saw nothing, and there is nothing
        ("", None, E, "", True),  # saw nothing; everything since is still here
        ("", None, E, "120-0", False),  # saw nothing, but some of it was trimmed
        (None, (150, 0), E, "", True),  # SSE: an offset of the current history
        (None, (50, 0), E, "", False),  # SSE: an offset older than the current epoch
        (None, (150, 0), E, "160-0", False),
        (None, (150, 0), "", "", False),
    ],
)
def test_covers(
    since_epoch: str | None,
    since: tuple[int, int] | None,
    epoch: str,
    trimmed: str,
    expected: bool,
) -> None:
    assert covers(since_epoch, since, epoch, trimmed) is expected
