import pytest

from edgeprune.errors import UsageError
from edgeprune.plan.budget import Budget, parse_budget


def test_each_unit_parses():
    assert parse_budget("12ms") == Budget(latency_ms=12.0)
    assert parse_budget("0.5x") == Budget(latency_x=0.5)
    assert parse_budget("30mJ") == Budget(energy_mj=30.0)


def test_terms_combine_by_comma_or_repetition():
    assert parse_budget("12ms,30mJ") == parse_budget(["12ms", "30mJ"]) == Budget(12.0, None, 30.0)


def test_the_tighter_latency_term_holds():
    b = parse_budget("8ms,0.5x")
    assert b.limits(dense_ms=10.0) == (5.0, None)
    assert b.limits(dense_ms=20.0) == (8.0, None)


@pytest.mark.parametrize("bad", ["-3ms", "0x", "abc", "0ms", "1.5x", "12", "12 s", "", "12ms,12ms"])
def test_bad_budgets_are_usage_errors_naming_the_flag(bad):
    with pytest.raises(UsageError, match="--budget"):
        parse_budget(bad)


def test_text_round_trips():
    b = parse_budget("0.3x, 25mJ")
    assert parse_budget(b.text) == b
