"""Process-wide settings from the environment (``SPACETIME_*``) and command-line flags, validated at the edge.

Book settings (topic, roster, models, caps) live in a book's TOML file: see ``spacetime.book``.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from spacetime.errors import ConfigError
from spacetime.redaction import redact_url

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
    if not url:
        raise ConfigError("the database URL is empty: use postgresql://user:password@host:port/dbname, "
                          "or unset SPACETIME_DATABASE_URL to use the embedded PostgreSQL")  # fmt: skip
    if not url.isprintable():  # a control character or line break; the URL is not echoed: it may hold a password
        raise ConfigError("malformed database URL: it holds a control character or a line break (percent-encode "
                          "it): use postgresql://user:password@host:port/dbname")  # fmt: skip
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"malformed database URL ({exc}): use postgresql://user:password@host:port/dbname") from None
    if not url.startswith(("postgresql://", "postgres://")):  # libpq reads the prefix case-sensitively
        shown = f" {redact_url(url)!r}" if parts.scheme and parts.netloc else ""  # else a password is not found
        raise ConfigError(
            f"malformed database URL{shown}: it must start with postgresql:// "
            "(e.g. postgresql://user:password@host:5432/dbname)"
        )
    try:
        port = parts.port  # parsing the port raises for a non-number or a number out of range
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigError(f"malformed database URL {redact_url(url)!r}: the port is not a number from 1 to 65535")
    return url


def load_settings(*, database_url: str | None = None, data_dir: str | Path | None = None) -> Settings:
    """Flags win over the environment, the environment over defaults."""
    url = database_url if database_url is not None else os.environ.get(ENV_DATABASE_URL) or None
    if url is not None:
        url = validate_database_url(url)
    raw_dir = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or None
    if raw_dir is not None and any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in str(raw_dir)):
        raise ConfigError(f"the data dir ({ENV_DATA_DIR} or --data-dir) holds a control character or a line break "
                          "(NUL, newline …): point it at a directory with a plain name")  # fmt: skip
    path = Path(raw_dir).expanduser() if raw_dir is not None else default_data_dir()
    return Settings(data_dir=path.absolute(), database_url=url)
