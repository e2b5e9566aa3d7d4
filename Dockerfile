# syntax=docker/dockerfile:1
# backlink-crawler as a container job: claims in (a file on the /data volume or stdin),
# results out (SQLite on /data, JSON lines on stdout with `--output -`), JSON logs on stderr.
#
#   docker build -t backlink-crawler .
#   docker run --rm -v "$PWD:/data" backlink-crawler verify claims.csv

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crawler ./crawler
# Wheels for the project and every dependency, so the final stage installs offline.
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CRAWLER_LOG_FORMAT=json
COPY --from=build /wheels /wheels
# The project's own wheel by file name: the version pinned is the one just built.
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels /wheels/backlink_crawler-*.whl \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 crawler \
    && mkdir /data && chown 10001 /data
USER 10001
WORKDIR /data
VOLUME ["/data"]
# Exec form: the crawler is PID 1 and receives SIGTERM itself; it finishes or abandons
# in-flight requests, saves what it decided and exits 130, and `verify` resumes next time.
ENTRYPOINT ["crawler"]
CMD ["--help"]
