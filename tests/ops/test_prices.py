"""The optional price table (TOML or two environment variables) that turns tokens into cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepsdk.ops.prices import PriceError, PriceTable


def test_toml_table_model_price_then_default(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        'currency = "EUR"\n[models.default]\nprompt_per_million = 1\ncompletion_per_million = 4\n'
        '[models."autoglm-phone-9b"]\nprompt_per_million = 0.05\ncompletion_per_million = 0.1\n'
    )
    table = PriceTable.load(env={"STEPSDK_PRICES": str(path), "STEPSDK_PRICE_PROMPT_PER_M": "99"})
    assert table is not None and table.currency == "EUR"
    assert table.cost("autoglm-phone-9b", 2_000_000, 1_000_000) == pytest.approx(0.2)
    assert table.cost("other", 1_000_000, 500_000) == pytest.approx(3.0)
    assert table.cost(None, 0, 0) == 0


def test_environment_prices_and_none() -> None:
    table = PriceTable.load(env={"STEPSDK_PRICE_PROMPT_PER_M": "0.5", "STEPSDK_PRICE_COMPLETION_PER_M": "2"})
    assert table is not None and table.cost("any", 1_000_000, 1_000_000) == pytest.approx(2.5)
    assert PriceTable.load(env={}) is None
    only_models = PriceTable(models={})
    assert only_models.cost("x", 1, 1) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models.default]\nprompt_per_million = -1\n", ">= 0"),
        ("[models.default]\nprompt_per_million = 'cheap'\n", ">= 0"),
        ("[models.default]\nprice = 1\n", "takes prompt_per_million and completion_per_million only"),
        ("currency = 'EUR'\n", "at least one [models.NAME]"),
        ("[models", "not valid TOML"),
    ],
)
def test_malformed_tables_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PriceError, match="p.toml|>= 0") as info:
        PriceTable.load(path)
    assert message in str(info.value)
    with pytest.raises(PriceError, match=">= 0"):
        PriceTable.load(env={"STEPSDK_PRICE_PROMPT_PER_M": "nan"})
