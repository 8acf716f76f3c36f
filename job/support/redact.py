"""Database passwords never reach output: URLs are shown masked, and any text leaving the
process (a message, a log line, a traceback, a `job_runs` row) is scrubbed of every password
in use, in every spelling it can take on the way.

A password may sit in a URL's user part (`user:pw@host`), in its query (`?password=pw`), in a
libpq `key=value` string, or in `NIGHTCAST_DATABASE_PASSWORD(_FILE)`. Drivers echo parts of a
connection string in their errors, exceptions quote values with `repr`, JSON escapes them,
and URLs encode them (SQLAlchemy leaves a space and `+` as they are; `quote` writes `%20`,
`quote_plus` writes `+`; either may be read back in lower case). So the passwords of the
settings in use are remembered here in each of those spellings and replaced wherever they
appear; masking the URLs nightcast itself prints is not enough.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, make_url

MASK = "***"

_secrets: set[str] = set()


def mask_url(url: str | URL) -> str:
    """The URL as text with its password masked, wherever in the URL it sits."""
    parsed = make_url(url)
    if "password" not in parsed.query:
        return parsed.render_as_string(hide_password=True)
    masked = parsed.update_query_dict({"password": MASK}).render_as_string(hide_password=True)
    return masked.replace(quote(MASK, safe=""), MASK)


def passwords_in(url: str | URL) -> list[str]:
    """Every password a URL carries (user part and query)."""
    parsed = make_url(url)
    found = [parsed.password] if parsed.password else []
    value = parsed.query.get("password")
    found += [value] if isinstance(value, str) else list(value or ())
    return [str(p) for p in found if p]


def _as_in_a_url(password: str) -> str:
    """The password as SQLAlchemy writes it into a URL's user part."""
    rendered = URL.create("x", username="u", password=password, host="h").render_as_string(
        hide_password=False
    )
    return rendered.removeprefix("x://u:").removesuffix("@h")


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def spellings(password: str) -> set[str]:
    """Every way `password` is written where output may carry it."""
    encoded = {quote(password, safe=""), quote_plus(password, safe=""), _as_in_a_url(password)}
    escaped = {
        repr(password)[1:-1],  # an exception or a log line quoting it
        password.replace("\\", "\\\\").replace("'", "\\'"),  # a libpq key='value'
        json.dumps(password)[1:-1],  # a JSON column or --json output
        json.dumps(password, ensure_ascii=False)[1:-1],
    }
    forms = {password} | encoded | {_lower_hex(e) for e in encoded} | escaped
    return {form for form in forms if form}


def remember(password: str) -> None:
    """Scrub `password`, in all its spellings, from all later output of this process."""
    if password:
        _secrets.update(spellings(password))


def redact(text: str) -> str:
    """`text` with every remembered password replaced by `***` (longest spellings first, so
    that one spelling inside another leaves no tail)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
