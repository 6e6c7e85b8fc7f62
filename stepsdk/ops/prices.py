"""An optional price table that turns token counts into cost.

From a small TOML file (``STEPSDK_PRICES=prices.toml``)::

    currency = "USD"
    [models.default]                       # any model not listed below
    prompt_per_million = 0.15
    completion_per_million = 0.60
    [models."autoglm-phone-9b"]            # the task's metadata.model
    prompt_per_million = 0.05
    completion_per_million = 0.10

or, for one price for every model, ``STEPSDK_PRICE_PROMPT_PER_M`` and
``STEPSDK_PRICE_COMPLETION_PER_M`` (the file wins when both are set). Without either there is no
cost, only tokens.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepsdk.errors import ConfigurationError

ENV_FILE = "STEPSDK_PRICES"
ENV_PROMPT = "STEPSDK_PRICE_PROMPT_PER_M"
ENV_COMPLETION = "STEPSDK_PRICE_COMPLETION_PER_M"


class PriceError(ConfigurationError):
    """The price table is malformed (the message names the file and the entry)."""


@dataclass(frozen=True)
class Price:
    prompt_per_million: float
    completion_per_million: float


@dataclass(frozen=True)
class PriceTable:
    currency: str = "USD"
    models: Mapping[str, Price] = field(default_factory=dict)

    def price(self, model: str | None) -> Price | None:
        return self.models.get(model or "") or self.models.get("default")

    def cost(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The cost of these tokens at the model's price (else the default), or None without a price."""
        price = self.price(model)
        if price is None:
            return None
        return (
            prompt_tokens * price.prompt_per_million + completion_tokens * price.completion_per_million
        ) / 1e6

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> PriceTable | None:
        """The table of ``path`` (else ``$STEPSDK_PRICES``, else the two price variables), or None."""
        env = os.environ if env is None else env
        path = path or env.get(ENV_FILE) or None
        if path:
            return cls.from_toml(Path(path))
        prompt, completion = env.get(ENV_PROMPT), env.get(ENV_COMPLETION)
        if prompt is None and completion is None:
            return None
        return cls(
            models={
                "default": Price(
                    _number(prompt or "0", ENV_PROMPT), _number(completion or "0", ENV_COMPLETION)
                )
            }
        )

    @classmethod
    def from_toml(cls, path: Path) -> PriceTable:
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PriceError(f"price table {path}: cannot read it ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise PriceError(f"price table {path}: not valid TOML ({exc})") from None
        currency = doc.get("currency", "USD")
        if not isinstance(currency, str) or not 1 <= len(currency) <= 10:
            raise PriceError(f"price table {path}: currency must be a short string")
        models = doc.get("models", {})
        if not isinstance(models, dict) or not models:
            raise PriceError(f"price table {path}: needs at least one [models.NAME] table")
        out: dict[str, Price] = {}
        for name, entry in models.items():
            if not isinstance(entry, dict) or set(entry) - {"prompt_per_million", "completion_per_million"}:
                raise PriceError(
                    f"price table {path}: [models.{name}] takes prompt_per_million and "
                    "completion_per_million only"
                )
            out[name] = Price(
                _number(entry.get("prompt_per_million", 0), f"models.{name}.prompt_per_million"),
                _number(entry.get("completion_per_million", 0), f"models.{name}.completion_per_million"),
            )
        return cls(currency=currency, models=out)


def _number(value: Any, where: str) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise PriceError(f"{where} must be a number >= 0, got {value!r}")
    return number
