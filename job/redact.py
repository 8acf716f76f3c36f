"""Database passwords never reach output: URLs are shown masked, and any text leaving the
process (a message, a log line, a `job_runs` row) is scrubbed of every password in use.

A password may sit in a URL's user part (`user:pw@host`), in its query (`?password=pw`), or
in `NIGHTCAST_DATABASE_PASSWORD(_FILE)`. Drivers sometimes echo parts of a connection
string in their errors, so masking the URLs nightcast itself prints is not enough: the
passwords of the settings in use are remembered here and replaced wherever they appear.
"""

from __future__ import annotations

from urllib.parse import quote

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


def remember(password: str) -> None:
    """Scrub `password` (as written and URL-encoded) from all later output of this process."""
    if password:
        _secrets.update({password, quote(password, safe="")})


def redact(text: str) -> str:
    """`text` with every remembered password replaced by `***`."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
