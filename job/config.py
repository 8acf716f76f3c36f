"""Every knob of nightcast in one place, read from `NIGHTCAST_*` variables or a `.env` file.

Settings are validated when they are read, so a bad value stops a command before it
touches the database, with a message naming the variable.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Collection, Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from job.errors import NightcastError, UsageError, quote
from job.forecast.params import ModelParams, RetrainPolicy
from job.ingest.tickers import normalize_ticker
from job.support import redact

if TYPE_CHECKING:
    from job.support.calendar import Calendars

log = logging.getLogger(__name__)

ENV_PREFIX = "NIGHTCAST_"
ENV_FILE = ".env"
#: What Dask's Client takes: protocol://host:port (or host:port, meaning tcp).
_DASK_ADDRESS = re.compile(r"(tcp|tls|ucx|ws|wss)://[\w.\-]+(:\d{1,5})?|[\w.\-]+:\d{1,5}|inproc://\S+")


def _calendar_name(value: str) -> str:
    import exchange_calendars

    if value not in exchange_calendars.get_calendar_names(include_aliases=True):
        raise ValueError(f"unknown exchange calendar {quote(value)} (e.g. XNYS, XLON, XTKS)")
    return value


#: PostgreSQL URLs without the installed driver: read as psycopg (3) URLs.
_POSTGRES_ALIASES = ("postgres", "postgresql", "postgresql+psycopg2")


class Settings(BaseSettings):
    """Process-wide configuration. CLI options override the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        env_ignore_empty=True,  # compose passes every setting; an empty one means the default
        allow_inf_nan=False,
    )

    database_url: str = "sqlite:///nightcast.db"
    # Apart from the URL, so that any password works as is (no URL-encoding): compose and
    # Docker secrets pass it this way. Either one, or a password in the URL.
    database_password: SecretStr | None = None
    database_password_file: Path | None = None
    tickers: Annotated[list[str], NoDecode] = ["TSLA"]
    source: Literal["yahoo", "csv", "sample"] = "yahoo"
    csv_path: Path | None = None
    # A single CSV file may be named for another ticker (job.ingest.sources.csvfile).
    csv_any_name: bool = False
    calendar: str = "XNYS"
    # Per ticker, "AET.L=XLON,4063.T=XTKS"; without one, a ticker's Yahoo suffix decides
    # (job.support.calendar.SUFFIX_CALENDARS), then `calendar`.
    calendars: Annotated[dict[str, str], NoDecode] = {}
    schedule_cron: str = "30 18 * * mon-fri"
    schedule_timezone: str = "America/New_York"
    misfire_grace_hours: float = Field(6.0, gt=0)
    heartbeat_file: Path = Path("nightcast.heartbeat")
    metric_windows: Annotated[list[int], NoDecode] = [5, 20, 60]
    history_start: date = date(2000, 1, 1)
    workers: int | None = Field(None, ge=1, description="local Dask worker processes (none: in-process)")
    dask_address: str | None = Field(None, description="an existing Dask scheduler, tcp://host:8786")
    model: ModelParams = ModelParams()
    policy: RetrainPolicy = RetrainPolicy()

    @field_validator("database_url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        # A password with @ : / ? # pasted into a URL makes it ambiguous or unparsable, and
        # the parser's own message would quote a piece of it: say what to do instead.
        hint = "; a password with @ : / ? # must be URL-encoded or set in NIGHTCAST_DATABASE_PASSWORD"
        try:
            url = make_url(value)
            url.port  # noqa: B018  (a non-numeric port raises here)
        except (ArgumentError, ValueError):
            raise ValueError(f"not a database URL (expected e.g. sqlite:///nightcast.db{hint})") from None
        if "@" in (url.host or ""):
            raise ValueError(f"the host part holds an @{hint}")
        if url.drivername in _POSTGRES_ALIASES:  # what Heroku, psql and psycopg2 users paste
            url = url.set(drivername="postgresql+psycopg")
            value = url.render_as_string(hide_password=False)
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("only sqlite and postgresql databases are supported")
        for password in redact.passwords_in(url):
            redact.remember(password)
        return value

    @field_validator("dask_address")
    @classmethod
    def _dask_address(cls, value: str | None) -> str | None:
        if value is not None and not _DASK_ADDRESS.fullmatch(value):
            raise ValueError(
                f"{quote(value)} is not a Dask scheduler address (expected e.g. tcp://host:8786)"
            )
        return value

    @field_validator("tickers", mode="before")
    @classmethod
    def _split_tickers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        return value

    @field_validator("tickers")
    @classmethod
    def _normalize_tickers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("no ticker given (e.g. TSLA or TSLA,AAPL)")
        try:
            return list(dict.fromkeys(normalize_ticker(t) for t in value))
        except NightcastError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("metric_windows", mode="before")
    @classmethod
    def _split_windows(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("metric_windows")
    @classmethod
    def _positive_windows(cls, value: list[int]) -> list[int]:
        if not value or any(w < 1 for w in value):
            raise ValueError("metric windows must be positive session counts")
        return sorted(set(value))

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        return _calendar_name(value)

    @field_validator("calendars", mode="before")
    @classmethod
    def _parse_calendars(cls, value: Any) -> Any:
        if isinstance(value, str):  # "AET.L=XLON,4063.T=XTKS"; a ticker may hold "=" itself
            value = [part.rpartition("=") for part in value.split(",") if part.strip()]
            if any(not ticker.strip() or not name.strip() for ticker, _, name in value):
                raise ValueError("expected TICKER=CALENDAR pairs, e.g. AET.L=XLON,4063.T=XTKS")
            value = [(ticker.strip(), name.strip()) for ticker, _, name in value]
        found: dict[str, str] = {}
        try:
            for ticker, name in value.items() if isinstance(value, dict) else value:
                symbol, calendar = normalize_ticker(ticker), _calendar_name(name)
                if found.setdefault(symbol, calendar) != calendar:
                    raise ValueError(f"{symbol} is given two calendars ({found[symbol]}, {calendar})")
        except NightcastError as exc:
            raise ValueError(str(exc)) from None
        return found

    @property
    def exchanges(self) -> Calendars:
        """Each ticker's exchange calendar."""
        from job.support.calendar import Calendars  # exchange_calendars loads in ~0.5 s: only when used

        return Calendars(self.calendar, self.calendars)

    @field_validator("schedule_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {quote(value)}") from None
        return value

    @field_validator("schedule_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"not a crontab expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _csv_means_the_csv_source(self) -> Settings:
        """A CSV path is read by the csv source only: with no source set anywhere, it picks
        that one (`load_settings` makes `--csv` win over a source from the environment)."""
        if self.csv_path is not None and self.source != "csv" and "source" not in self.model_fields_set:
            self.source = "csv"
        return self

    @model_validator(mode="after")
    def _password_into_url(self) -> Settings:
        """Put a separately given password into `database_url` (encoded by SQLAlchemy)."""
        if self.database_password is not None and self.database_password_file is not None:
            raise ValueError(
                f"{ENV_PREFIX}DATABASE_PASSWORD and {ENV_PREFIX}DATABASE_PASSWORD_FILE are both set: keep one"
            )
        password = self.database_password.get_secret_value() if self.database_password else None
        if self.database_password_file is not None:
            try:
                password = self.database_password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(
                    f"{ENV_PREFIX}DATABASE_PASSWORD_FILE: cannot read {self.database_password_file} "
                    f"({type(exc).__name__})"
                ) from None
        if password and make_url(self.database_url).get_backend_name() == "postgresql":
            redact.remember(password)
            url = make_url(self.database_url).set(password=password)
            self.database_url = url.render_as_string(hide_password=False)
        return self

    @property
    def safe_database_url(self) -> str:
        """The URL with any password masked, for logs, errors and `status`."""
        return redact.mask_url(self.database_url)


def _setting_name(loc: tuple[int | str, ...], overrides: dict[str, Any]) -> tuple[str, str]:
    """The option or variable a validation error's location names, and which item of it."""
    names = [str(part) for part in loc if isinstance(part, str)]
    items = [part for part in loc if isinstance(part, int)]
    which = f"item {items[0] + 1}: " if items else ""
    if names and names[0] in overrides:
        return "--" + names[0].replace("_", "-"), which
    return ENV_PREFIX + "__".join(names).upper(), which


#: Variables of the prefix read elsewhere: the compose scale file, the tests and benchmarks.
OTHER_VARIABLES = {"NIGHTCAST_WORKER_MEMORY", "NIGHTCAST_TEST_PG_URL", "NIGHTCAST_BENCH_PG_URL"}


def unknown_variables(names: Iterable[str]) -> list[str]:
    """One line per NIGHTCAST_* name that is no setting (a typo is otherwise silently
    ignored), with the closest setting's name where one is close."""
    known = [ENV_PREFIX + name.upper() for name in Settings.model_fields]
    nested = {"model": ModelParams, "policy": RetrainPolicy}
    known += [
        f"{ENV_PREFIX}{top.upper()}__{part.upper()}"
        for top, kind in nested.items()
        for part in kind.model_fields
    ]
    lines = []
    for raw in sorted(set(names)):
        name = raw.upper()
        if not name.startswith(ENV_PREFIX) or name in known or name in OTHER_VARIABLES:
            continue
        if (
            name.split("__")[0] in known
            and name.split("__")[0].removeprefix(ENV_PREFIX).lower() not in nested
        ):
            continue  # a plain setting's own name with a suffix is not ours to judge
        close = difflib.get_close_matches(name, known, n=1)
        name = raw
        lines.append(f"{name} is not a nightcast setting" + (f" (did you mean {close[0]}?)" if close else ""))
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning a validation failure into one line that names the variable;
    a NIGHTCAST_* variable that is no setting is warned about."""
    clean = {key: value for key, value in overrides.items() if value is not None}
    if "csv_path" in clean:  # --csv: the csv source, whatever the environment says
        chosen = clean.setdefault("source", "csv")
        if chosen != "csv":
            raise UsageError(f"--csv is read only by the csv source, not --source {chosen}: drop one of them")
    for line in unknown_variables([*os.environ, *_env_file_names()]):
        log.warning("%s", line)
    try:
        return Settings(**clean)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a check across settings names them itself
            raise NightcastError(f"setting {message}") from None
        name, which = _setting_name(first["loc"], clean)
        kind = UsageError if name.startswith("--") else NightcastError  # an option's value: exit 2
        raise kind(f"setting {name}: {which}{message}") from None
    except SettingsError as exc:  # a nested setting given as one variable that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = ENV_PREFIX + (field.group(1).upper() if field else "?")
        raise NightcastError(
            f"setting {name}: not a JSON object (set its parts instead, e.g. {name}__PRESET=seed)"
        ) from None
    except UnicodeDecodeError:
        raise NightcastError(f"setting file {ENV_FILE}: not UTF-8 text") from None


def _env_file_names() -> list[str]:
    try:
        return list(dotenv_values(ENV_FILE)) if Path(ENV_FILE).is_file() else []
    except UnicodeDecodeError:
        return []  # load_settings names the file


def settings_in_effect(settings: Settings, options: Collection[str] = ()) -> list[tuple[str, str, str]]:
    """(variable, value, where it came from) for every setting, nested ones by their
    NIGHTCAST_X__Y name: `nightcast config`. `options`: the settings given on the command
    line. Passwords are masked."""
    file_values = dotenv_values(ENV_FILE) if Path(ENV_FILE).is_file() else {}

    def origin(variable: str, top: str) -> str:
        if top in options:
            return "command line"
        if os.environ.get(variable):
            return "environment"
        if file_values.get(variable):
            return f"{ENV_FILE} file"
        return "default"

    rows = []
    for name, value in settings.model_dump().items():
        variable = ENV_PREFIX + name.upper()
        if isinstance(value, dict) and name in ("model", "policy"):
            for part, inner in value.items():
                nested = f"{variable}__{part.upper()}"
                rows.append((nested, _shown(inner), origin(nested, name)))
            continue
        if name == "database_url":
            value = settings.safe_database_url
        elif name == "database_password" and value is not None:
            value = "***"
        rows.append((variable, _shown(value), origin(variable, name)))
    return rows


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple) and value:
        return ",".join(str(v) for v in value)
    if isinstance(value, dict) and value:
        return ",".join(f"{k}={v}" for k, v in value.items())
    return "-" if value is None or value in ({}, []) else str(value)
