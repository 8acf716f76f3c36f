"""The long-running service: an APScheduler cron job that runs the nightly cycle.

Fires Mon-Fri 18:30 America/New_York by default and skips days that are not exchange
sessions. A fire missed while the process was down runs late within the grace time,
several missed fires coalesce into one, and the cycle itself catches up every session the
database is missing, so nothing is lost by being down. SIGTERM/SIGINT stop the service
after the running (ticker, session) transaction commits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from job.config import ENV_PREFIX, Settings
from job.db import get_engine
from job.db.forecasts import latest_as_of
from job.errors import NightcastError
from job.ingest.sources import source_for
from job.pipeline import Cycle
from job.support.clock import utcnow
from job.support.files import replace_file

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60


#: How far ahead of this clock a heartbeat may be dated (clocks of two containers differ a
#: little); further ahead, it was written by a clock that was wrong and proves nothing.
HEARTBEAT_AHEAD_SECONDS = 60


def write_heartbeat(path: Path, now: datetime) -> None:
    """Atomically replace the heartbeat so a healthcheck never reads half a timestamp."""
    try:
        replace_file(path, lambda tmp: tmp.write_text(now.isoformat() + "\n"))
    except OSError as exc:
        raise NightcastError(
            f"setting {ENV_PREFIX}HEARTBEAT_FILE: cannot write {path} ({exc.strerror})"
        ) from None


def heartbeat_age(path: Path, now: datetime) -> float:
    """Seconds since the scheduler last wrote its heartbeat; an error for a heartbeat that
    is missing, unreadable or dated in the future (a clock that was ahead would otherwise
    keep a dead scheduler healthy)."""
    try:
        written = datetime.fromisoformat(path.read_text().strip())
    except FileNotFoundError:
        raise NightcastError(f"heartbeat file {path} does not exist: is the scheduler running?") from None
    except (ValueError, UnicodeDecodeError):
        raise NightcastError(f"heartbeat file {path} holds no timestamp") from None
    except OSError as exc:
        raise NightcastError(
            f"setting {ENV_PREFIX}HEARTBEAT_FILE: cannot read {path} ({exc.strerror})"
        ) from None
    age = (now - written).total_seconds()
    if age < -HEARTBEAT_AHEAD_SECONDS:
        raise NightcastError(
            f"heartbeat file {path} is dated {-age:.0f}s in the future: a clock is wrong, it proves nothing"
        )
    return max(age, 0.0)


class NightlyService:
    """Owns the scheduler, the cycle and the stop flag shared with signal handlers."""

    def __init__(
        self,
        settings: Settings,
        *,
        trigger: BaseTrigger | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.stop = threading.Event()
        self.cycle = Cycle(
            settings,
            source_for(settings, clock=clock),
            stop=self.stop,
            now=clock,
        )
        self.timezone = ZoneInfo(settings.schedule_timezone)
        self.scheduler = BackgroundScheduler(timezone=self.timezone)
        self.trigger = trigger or CronTrigger.from_crontab(settings.schedule_cron, timezone=self.timezone)
        self.scheduler.add_job(
            self.fire,
            self.trigger,
            id="nightly",
            name="nightly cycle",
            misfire_grace_time=int(settings.misfire_grace_hours * 3600),
            coalesce=True,
            max_instances=1,
        )
        self.scheduler.add_job(
            self.beat, IntervalTrigger(seconds=HEARTBEAT_SECONDS), id="heartbeat", coalesce=True
        )

    def beat(self) -> None:
        write_heartbeat(self.settings.heartbeat_file, self.clock())

    def fire(self) -> None:
        """One scheduled evening: run the cycle if today is a session of some ticker's exchange."""
        today = self.clock().astimezone(self.timezone).date()
        exchanges = sorted({self.cycle.calendars.name(t) for t in self.settings.tickers})
        if not any(self._trades(t, today) for t in self.settings.tickers):
            log.info("%s is not a session of %s; nothing to do", today, ", ".join(exchanges))
            self.log_next_run()
            return
        self.run_cycle()

    def run_cycle(self) -> None:
        log.info("cycle starting for %s", ",".join(self.settings.tickers))
        try:
            report = self.cycle.nightly(self.settings.tickers, wait=True)
        except NightcastError as exc:
            log.error("cycle failed: %s", exc)
            self.log_next_run()
            return
        finally:
            self.beat()
        log.info(
            "cycle #%d %s: %s",
            report.run_id,
            report.status,
            ", ".join(f"{t.ticker} {t.status} ({t.sessions} sessions)" for t in report.tickers),
        )
        self.log_next_run()

    def log_next_run(self) -> None:
        """When the next nightly cycle fires: what someone tailing the log wants to know. From
        the trigger itself: asking the scheduler would wait on the lock its shutdown holds."""
        when = self.trigger.get_next_fire_time(None, self.clock().astimezone(self.timezone))
        if when is not None:
            log.info("next cycle: %s", when.isoformat(timespec="minutes"))

    def _trades(self, ticker: str, day: date) -> bool:
        """Whether `day` is a session of the ticker's exchange; a calendar that cannot tell
        (ended, or unusable) is reported and counts as closed, so the others still run."""
        try:
            return self.cycle.calendars(ticker).is_session(day)
        except NightcastError as exc:
            log.warning("%s: %s", ticker, exc)
            return False

    def _behind(self, ticker: str, latest: date | None, now: datetime) -> bool:
        """Whether the ticker lacks a forecast as of its exchange's last closed session (a
        calendar that cannot tell counts as behind: the cycle then reports why)."""
        try:
            return latest is None or latest < self.cycle.calendars(ticker).last_closed_session(now)
        except NightcastError:
            return True

    def has_gap(self) -> bool:
        """True when some ticker lacks a forecast as of the last closed session."""
        now = self.clock()
        with get_engine(self.settings.database_url).connect() as conn:
            latest = latest_as_of(conn, self.settings.tickers)
        return any(self._behind(t, latest.get(t), now) for t in self.settings.tickers)

    def request_stop(self, _signum: int, _frame: object) -> None:
        """Signal handler: only set the flag. Shutting down here could deadlock on a lock
        the interrupted main thread holds; `serve` does it once its wait returns."""
        self.stop.set()

    def serve(self, *, run_now: bool = False) -> None:
        """Run until SIGTERM/SIGINT; catch up first when the database is behind."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.beat()
        if run_now or self.has_gap():
            self.scheduler.add_job(self.run_cycle, id="catch-up", name="start-up cycle")
        self.scheduler.start()
        log.info(
            "scheduler started: %s (%s), tickers %s, database %s",
            self.settings.schedule_cron,
            self.settings.schedule_timezone,
            ",".join(self.settings.tickers),
            self.settings.safe_database_url,
        )
        self.log_next_run()
        # Woken every second: a signal the kernel hands to another thread (BLAS's, the
        # scheduler's) only trips a flag, which Python acts on when this thread next runs.
        while not self.stop.wait(timeout=1.0):
            pass
        log.info("stop requested: finishing the current transaction")
        self.scheduler.shutdown(wait=True)
        log.info("scheduler stopped")
