# Two images from one file:
#   docker build .                  -> the production image: worker, poller, scheduler,
#                                      migrations and the operator commands (scripts/)
#   docker build --target devtools  -> the same plus devtools/ (the Lambda emulator, the demo,
#                                      the benchmark); docker-compose.yml's emulator uses it.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY alembic.ini ./
COPY migrations ./migrations
COPY shared ./shared
COPY worker ./worker
COPY scripts ./scripts
COPY web ./web
COPY schemas ./schemas

RUN useradd --create-home --uid 10001 renderq


FROM base AS devtools
COPY devtools ./devtools
USER renderq
CMD ["python", "-m", "devtools.emulator", "--host", "0.0.0.0", "--port", "9001"]


# Last, so that a plain `docker build .` produces it.
FROM base AS production
USER renderq
CMD ["dramatiq", "worker.actors", "--processes", "2", "--threads", "8", "--skip-logging"]
