"""The one exception type whose message is meant for people, not for a traceback."""


class NightcastError(Exception):
    """A problem the user can act on; the CLI prints its message as one line and exits 1."""


class TickerError(NightcastError):
    """A problem with one ticker's data; the cycle records it and carries on with the others."""

    def __init__(self, ticker: str, message: str) -> None:
        super().__init__(f"{ticker}: {message}")
        self.ticker = ticker
