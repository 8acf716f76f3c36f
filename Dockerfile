# nightcast: the nightly forecasting job. Model artifacts and all state live in the
# database, so containers built from this image hold nothing worth keeping.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    MPLBACKEND=Agg \
    NIGHTCAST_HEARTBEAT_FILE=/tmp/nightcast.heartbeat

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so that editing the code does not
# invalidate this (large: TensorFlow) layer.
COPY pyproject.toml README.md ./
RUN mkdir job migrations \
    && touch job/__init__.py migrations/__init__.py \
    && pip install --no-cache-dir . \
    && pip uninstall --yes nightcast \
    && rm -rf job migrations

COPY job ./job
COPY migrations ./migrations
RUN pip install --no-cache-dir --no-deps . \
    && groupadd --gid 10001 nightcast \
    && useradd --create-home --uid 10001 --gid 10001 nightcast

USER 10001:10001
WORKDIR /home/nightcast

HEALTHCHECK --interval=60s --timeout=20s --start-period=120s --retries=3 \
    CMD ["nightcast", "health", "--max-age", "300"]

ENTRYPOINT ["nightcast"]
CMD ["schedule"]
