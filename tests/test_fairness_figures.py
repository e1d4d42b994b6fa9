"""``devtools.fairness``: budget-seconds over a window, whole holds or clipped at its end."""

from __future__ import annotations

import pytest

from devtools import fairness

G = fairness.Grant


def test_budget_seconds_count_grants_started_in_the_window_clipped_at_its_end() -> None:
    grants = [
        G("A", 0.0, 0.0, 5.0, 4),  # started before the window: the head start, not counted
        G("A", 0.0, 2.0, 4.0, 4),
        G("B", 0.0, 9.0, 12.0, 4),  # started just before the end, held mostly after it
    ]
    whole = fairness.budget_seconds(grants, 1.0, 10.0)
    assert whole == {"A": pytest.approx(8.0), "B": pytest.approx(12.0)}
    clipped = fairness.budget_seconds(grants, 1.0, 10.0, clip=True)
    assert clipped == {"A": pytest.approx(8.0), "B": pytest.approx(4.0)}
