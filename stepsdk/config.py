"""Configuration: explicit arguments win over the environment. The key never shows in repr()."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from stepsdk.errors import ConfigurationError
from stepsdk.model import Level
from stepsdk.schema import BUCKET

_log = logging.getLogger("stepsdk.config")


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied by the sanitizer (per recorded value)."""

    max_string: int  # characters kept of any string inside step data / text fields
    max_field_bytes: int  # JSON size of one field (step_data, action_result, metadata) after sanitizing
    max_depth: int  # nesting depth kept
    max_items: int  # items kept of one list/dict
    max_text: int  # thinking / error_message characters
    max_stack: int  # stack_trace characters (0 = dropped)
    screenshots: bool  # record screenshots at all


LEVEL_LIMITS: dict[Level, Limits] = {
    Level.BASIC: Limits(
        max_string=1_000,
        max_field_bytes=16_384,
        max_depth=8,
        max_items=100,
        max_text=2_000,
        max_stack=0,
        screenshots=False,
    ),
    Level.DETAILED: Limits(
        max_string=10_000,
        max_field_bytes=262_144,
        max_depth=20,
        max_items=1_000,
        max_text=20_000,
        max_stack=20_000,
        screenshots=True,
    ),
    Level.FULL: Limits(
        max_string=1_000_000,
        max_field_bytes=4_194_304,
        max_depth=64,
        max_items=100_000,
        max_text=1_000_000,
        max_stack=200_000,
        screenshots=True,
    ),
}


def _level(value: str | Level | None) -> Level:
    if value is None or value == "":
        return Level.DETAILED
    if isinstance(value, Level):
        return value
    if not isinstance(value, str):
        raise TypeError(f"level must be a Level or one of BASIC, DETAILED, FULL, not {type(value).__name__}")
    try:
        return Level(value.strip().upper())
    except ValueError:
        raise ConfigurationError(f"unknown level {value!r}: expected BASIC, DETAILED or FULL") from None


@dataclasses.dataclass(frozen=True)
class Config:
    """Where and how a tracker records. Build with `Config.resolve(...)`.

    `supabase_key` is excluded from repr() and never logged. Without a URL and key the tracker
    runs in local mode: the backup folder is the store.
    """

    supabase_url: str | None = None
    supabase_key: str | None = dataclasses.field(default=None, repr=False)
    backup_dir: Path = Path("backup")
    level: Level = Level.DETAILED
    limits: Limits = LEVEL_LIMITS[Level.DETAILED]
    # Network behaviour (seconds). retry_max_time bounds one batch's retries before the
    # circuit breaker opens; probe_* bound how often an unreachable backend is probed.
    connect_timeout: float = 3.0
    request_timeout: float = 10.0
    retry_max_time: float = 8.0
    probe_min: float = 5.0
    probe_max: float = 30.0
    bucket: str = BUCKET
    owner_id: str | None = None
    # Local retention: a tracker deletes backup tasks older than this many days when it starts
    # (stepsdk.ops.local_retention.apply_on_start). None: keep everything.
    retention_days: int | None = None
    # Sensitive screens (stepsdk/recording/sensitive.py): store | redact | encrypt; None = encrypt when a
    # key is configured (STEPSDK_SCREENSHOT_KEY / _KEY_FILE), else redact. region_style: black | blur.
    screenshot_policy: str | None = None
    screenshot_key_file: str | None = None
    region_style: str = "black"

    @property
    def remote(self) -> bool:
        return bool(self.supabase_url and self.supabase_key)

    @property
    def mode(self) -> str:
        return "supabase" if self.remote else "local"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be written anywhere (used by the sanitizer)."""
        return tuple(s for s in (self.supabase_key,) if s and len(s) >= 8)

    @classmethod
    def resolve(
        cls,
        supabase_url: str | None = None,
        supabase_key: str | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
        level: str | Level | None = None,
        **overrides: object,
    ) -> Config:
        """Arguments first, then SUPABASE_URL, SUPABASE_SECRET_KEY (or SUPABASE_SERVICE_ROLE_KEY),
        STEPSDK_BACKUP_DIR (default ./backup), STEPSDK_LEVEL (default DETAILED),
        STEPSDK_MAX_STRING / STEPSDK_MAX_FIELD_BYTES (or max_string= / max_field_bytes=): override
        the level's string and field size limits; STEPSDK_RETENTION_DAYS (or retention_days=). Pass "" for the
        URL or key to force local mode whatever the environment says."""
        env = os.environ
        env_url, env_key = supabase_env(env)
        # An explicit "" means "no Supabase" (local mode) without falling back to the environment.
        url = (supabase_url or None) if supabase_url is not None else env_url
        key = (supabase_key or None) if supabase_key is not None else env_key
        if url is not None:
            if not isinstance(url, str):
                raise TypeError("supabase_url must be a string")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigurationError("supabase_url must be an http(s) URL like https://xyz.supabase.co")
            url = url.rstrip("/")
        if key is not None and not isinstance(key, str):
            raise TypeError("supabase_key must be a string")
        folder = backup_dir if backup_dir is not None else env.get("STEPSDK_BACKUP_DIR") or "backup"
        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError("backup_dir must be a path")
        lvl = _level(level if level is not None else env.get("STEPSDK_LEVEL"))
        limits = overrides.pop("limits", None) or LEVEL_LIMITS[lvl]
        limits = _limit_overrides(limits, overrides, env)
        _retention_override(overrides, env)
        owner = overrides.get("owner_id")
        if owner is not None:
            _check_owner_id(owner)
        if supabase_url != "" and supabase_key != "":  # "" forces local mode: nothing to warn about
            _warn_local_fallback(url, key, env, Path(folder))
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - fields
        if unknown:
            raise TypeError(f"unknown configuration option(s): {', '.join(sorted(unknown))}")
        return cls(
            supabase_url=url, supabase_key=key, backup_dir=Path(folder), level=lvl, limits=limits, **overrides
        )  # type: ignore[arg-type]


def _check_owner_id(owner: object) -> None:
    """`tasks.owner_id` is a uuid (a Supabase auth user id): refused here, not by every row."""
    import uuid

    if not isinstance(owner, str):
        raise TypeError(f"owner_id must be a str (a Supabase user id), got {type(owner).__name__}")
    try:
        uuid.UUID(owner)
    except ValueError:
        raise ConfigurationError(
            f"owner_id must be a Supabase user id (a UUID), got {owner[:60]!r}"
        ) from None


# The environment variables holding the Supabase key, in order of preference.
SUPABASE_KEY_VARS = ("SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY")


def supabase_env(env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """SUPABASE_URL and the first non-empty SUPABASE_SECRET_KEY / SUPABASE_SERVICE_ROLE_KEY, as set
    (unchecked; unset or "" -> None). Config.resolve and the CLI read the environment through this."""
    env = os.environ if env is None else env
    key = next((env[name] for name in SUPABASE_KEY_VARS if env.get(name)), None)
    return env.get("SUPABASE_URL") or None, key


# Names people set by mistake for the key (other tools' conventions); stepsdk never reads them.
MISNAMED_KEY_VARS = ("SUPABASE_KEY", "SUPABASE_SERVICE_KEY", "SUPABASE_API_KEY", "SUPABASE_SERVICE_ROLE")
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        _log.warning("%s", message)


def _warn_local_fallback(url: str | None, key: str | None, env: Mapping[str, str], folder: Path) -> None:
    """Say so when a Supabase URL is set but no key is: the run would otherwise go to the local
    backup silently. Names the variables only, never their values."""
    misnamed = [name for name in MISNAMED_KEY_VARS if env.get(name)]
    if url and not key:
        hint = (
            f" ({', '.join(misnamed)} is set, but stepsdk reads {' or '.join(SUPABASE_KEY_VARS)})"
            if misnamed
            else f": set {' or '.join(SUPABASE_KEY_VARS)}"
        )
        _warn_once(f"SUPABASE_URL is set but no Supabase key is{hint}; recording locally into {folder}")
    elif misnamed and not key:
        _warn_once(
            f"{', '.join(misnamed)} is set but stepsdk does not read it: the key goes in "
            f"{' or '.join(SUPABASE_KEY_VARS)}"
        )


_LIMIT_ENV = {"max_string": "STEPSDK_MAX_STRING", "max_field_bytes": "STEPSDK_MAX_FIELD_BYTES"}


def _limit_overrides(
    limits: Limits, overrides: dict[str, object], env: os._Environ[str] | dict[str, str]
) -> Limits:
    """Apply max_string / max_field_bytes from arguments, else from the environment."""
    changes: dict[str, int] = {}
    for name, var in _LIMIT_ENV.items():
        raw = overrides.pop(name, None)
        source = name
        if raw is None and env.get(var):
            raw, source = env[var], var
        if raw is None:
            continue
        try:
            value = int(raw)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise ConfigurationError(f"{source} must be an integer, got {raw!r}") from None
        if isinstance(raw, bool) or not 100 <= value <= 100_000_000:
            raise ConfigurationError(f"{source} must be between 100 and 100,000,000, got {raw!r}")
        changes[name] = value
    return dataclasses.replace(limits, **changes) if changes else limits


def _retention_override(overrides: dict[str, object], env: Mapping[str, str]) -> None:
    """retention_days from the argument, else STEPSDK_RETENTION_DAYS: a whole number of days."""
    raw, source = overrides.get("retention_days"), "retention_days"
    if raw is None and env.get("STEPSDK_RETENTION_DAYS"):
        raw, source = env["STEPSDK_RETENTION_DAYS"], "STEPSDK_RETENTION_DAYS"
    if raw is None:
        return
    try:
        value = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{source} must be a whole number of days, got {raw!r}") from None
    if isinstance(raw, (bool, float)) or not 1 <= value <= 36_500:
        raise ConfigurationError(f"{source} must be between 1 and 36500 days, got {raw!r}")
    overrides["retention_days"] = value
