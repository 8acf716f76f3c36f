"""The SQL contract: table and view definitions users query directly.

Names here are public API (see README). Change them only together with a migration.
Types are chosen to behave alike on SQLite and PostgreSQL: DATE for sessions,
DOUBLE for prices, JSON for structured details, binary for model artifacts.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.types.TypeDecorator[datetime.datetime]):
    """A timestamp stored in UTC and read back aware: SQLite keeps no offset and returns naive
    datetimes, PostgreSQL's TIMESTAMPTZ aware ones; code reading either gets the same."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(
        self, value: datetime.datetime | None, dialect: sa.Dialect
    ) -> datetime.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value


#: The columns in price units, which a revision of the ticker's prices rescales.
STORED_PRICES = ("open", "high", "low", "close", "adj_close")
#: A bar's values, in the order every array of bars holds them.
BAR_VALUES = (*STORED_PRICES, "volume")

SYMBOL = sa.String(16)
#: The mark of a column in price units (`Column.info`): what a re-basing rescales.
IN_PRICE_UNITS = {"unit": "price"}
Price = sa.Double()
Stamp = UtcDateTime()

prices = sa.Table(
    "prices",
    metadata,
    sa.Column("ticker", SYMBOL, primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("open", Price, nullable=False),
    sa.Column("high", Price, nullable=False),
    sa.Column("low", Price, nullable=False),
    sa.Column("close", Price, nullable=False),
    sa.Column("adj_close", Price, nullable=False),
    sa.Column("volume", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("ingested_at", Stamp, nullable=False),
    sqlite_with_rowid=False,  # one B-tree keyed by (ticker, date); see migration 0003
)

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", Stamp, nullable=False),
    sa.Column("finished_at", Stamp),
    sa.Column("tickers", sa.JSON, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Index(None, "started_at"),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticker", SYMBOL, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("model_versions.id")),
    sa.Column("trained_from", sa.Date, nullable=False),
    sa.Column("trained_through", sa.Date, nullable=False),
    sa.Column("n_samples", sa.Integer, nullable=False),
    sa.Column("epochs", sa.Integer, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("train_loss", sa.Double),
    sa.Column("val_loss", sa.Double),
    sa.Column("artifact", sa.LargeBinary),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Index(None, "ticker", "trained_through"),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("ticker", SYMBOL, primary_key=True),
    sa.Column("target_date", sa.Date, primary_key=True),
    sa.Column("model", sa.String(16), primary_key=True),
    sa.Column("as_of_date", sa.Date, nullable=False),
    sa.Column("predicted_close", Price, nullable=False, info=IN_PRICE_UNITS),
    sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id")),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("job_runs.id")),
    sa.Column("created_at", Stamp, nullable=False),
    *(
        sa.Column(c, Price, info=IN_PRICE_UNITS)
        for c in ("lower_80", "upper_80", "lower_95", "upper_95", "network_close")
    ),
    # Standard deviations of the next log return: free of units, so a re-basing leaves them.
    sa.Column("scale", sa.Double),
    sa.Column("network_scale", sa.Double),
    sa.Column("scale_source", sa.String(16)),
    sa.Index(None, "target_date"),
    sa.Index(None, "ticker", "as_of_date"),
)

#: A forecast's columns in price units, which a re-basing rescales: those marked so.
PREDICTED_PRICES = tuple(c.name for c in predictions.columns if c.info == IN_PRICE_UNITS)

rolling_metrics = sa.Table(
    "rolling_metrics",
    metadata,
    sa.Column("ticker", SYMBOL, primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("model", sa.String(16), primary_key=True),
    sa.Column("window_days", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("rmse", sa.Double, nullable=False),
    sa.Column("mae", sa.Double, nullable=False),
    sa.Column("mape", sa.Double, nullable=False),
    *(
        sa.Column(name, sa.Double)
        for name in (
            "coverage_80",
            "coverage_95",
            "width_95",
            "winkler_95",
            "dm_pvalue",
            "hit_rate",
            "up_rate",
        )
    ),
)

price_revisions = sa.Table(
    "price_revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticker", SYMBOL, nullable=False),
    sa.Column("detected_at", Stamp, nullable=False),
    sa.Column("first_revised_date", sa.Date, nullable=False),
    sa.Column("last_revised_date", sa.Date, nullable=False),
    sa.Column("factor", sa.Double, nullable=False),
    sa.Column("sessions_changed", sa.Integer, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, server_default="rebase"),  # or "correction"
    sa.Index(None, "ticker", "detected_at"),
)

price_flags = sa.Table(
    "price_flags",
    metadata,
    sa.Column("ticker", SYMBOL, primary_key=True),
    sa.Column("detected_at", Stamp, nullable=False),
    sa.Column("first_date", sa.Date, nullable=False),
    sa.Column("last_date", sa.Date, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

# Views are created by migrations (autogenerate does not manage views). These lightweight
# handles let the code query them without pretending they are tables.
prediction_errors = sa.table(
    "prediction_errors",
    *(
        sa.column(name)
        for name in (
            "ticker",
            "target_date",
            "model",
            "as_of_date",
            "predicted_close",
            "actual_close",
            "error",
            "abs_pct_error",
            "lower_80",
            "upper_80",
            "lower_95",
            "upper_95",
            "network_close",
            "scale",
            "network_scale",
            "scale_source",
            "inside_80",
            "inside_95",
        )
    ),
)

# Typed handles: on SQLite a view's columns carry no declared type, so the Date type here is
# what turns the ISO strings SQLite returns into `date` objects (PostgreSQL returns dates).
latest_predictions = sa.table(
    "latest_predictions",
    sa.column("ticker", SYMBOL),
    sa.column("model", sa.String(16)),
    sa.column("as_of_date", sa.Date),
    sa.column("target_date", sa.Date),
    sa.column("predicted_close", Price),
    sa.column("last_close", Price),
    sa.column("implied_change", Price),
    sa.column("implied_change_pct", sa.Double),
    sa.column("model_version_id", sa.Integer),
    *(sa.column(bound, Price) for bound in ("lower_80", "upper_80", "lower_95", "upper_95")),
    sa.column("scale", sa.Double),
    sa.column("network_scale", sa.Double),
    sa.column("scale_source", sa.String(16)),
)

model_skill = sa.table(
    "model_skill",
    sa.column("ticker", SYMBOL),
    sa.column("window_days", sa.Integer),
    sa.column("date", sa.Date),
    sa.column("n", sa.Integer),
    sa.column("lstm_rmse", sa.Double),
    sa.column("naive_rmse", sa.Double),
    sa.column("rmse_ratio", sa.Double),
    *(
        sa.column(name, sa.Double)
        for name in (
            "dm_pvalue",
            "hit_rate",
            "up_rate",
            "coverage_80",
            "coverage_95",
            "width_95",
            "winkler_95",
            "naive_coverage_80",
            "naive_coverage_95",
            "naive_width_95",
            "naive_winkler_95",
        )
    ),
    sa.column("model", sa.String(16)),
    sa.column("rmse", sa.Double),
)
