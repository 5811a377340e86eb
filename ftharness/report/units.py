"""How amounts are written for people, the same in the decision's reasons, the report and the terminal."""

from __future__ import annotations


def usd(x: float) -> str:
    """Dollars readable at any size: $0.0033, $2.52, $1,200."""
    if x == 0:
        return "$0"
    if abs(x) < 0.01:
        return f"${x:.2g}"
    return f"${x:,.2f}" if abs(x) < 1000 else f"${x:,.0f}"
