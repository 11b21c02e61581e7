"""Process-wide settings from the environment (``SPACETIME_*``) and command-line flags, validated at the edge.

Book settings (topic, roster, models, caps) live in a book's TOML file: see ``spacetime.book``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from spacetime.errors import ConfigError

ENV_DATA_DIR = "SPACETIME_DATA_DIR"
ENV_DATABASE_URL = "SPACETIME_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    """Where the embedded PostgreSQL keeps its data (``<data_dir>/pg``) and Space Time its other files."""
    database_url: str | None
    """An external PostgreSQL (>= 15, with pgvector); ``None`` means the embedded server under ``data_dir``."""

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("spacetime", appauthor=False))


def validate_database_url(url: str) -> str:
    """Check the shape of a PostgreSQL URL (not reachability). Raises ConfigError with the fix."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"malformed database URL ({exc}): use postgresql://user:password@host:port/dbname") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"malformed database URL {redact_url(url)!r}: it must start with postgresql:// "
            "(e.g. postgresql://user:password@host:5432/dbname)"
        )
    try:
        _ = parts.port  # parsing the port raises for a non-number
    except ValueError:
        raise ConfigError(f"malformed database URL {redact_url(url)!r}: the port is not a number") from None
    return url


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def load_settings(*, database_url: str | None = None, data_dir: str | Path | None = None) -> Settings:
    """Flags win over the environment, the environment over defaults."""
    url = database_url if database_url is not None else os.environ.get(ENV_DATABASE_URL) or None
    if url is not None:
        url = validate_database_url(url)
    raw_dir = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or None
    path = Path(raw_dir).expanduser() if raw_dir is not None else default_data_dir()
    return Settings(data_dir=path.absolute(), database_url=url)
