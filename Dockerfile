# One image for the worker, the scheduler, migrations and the dev-only emulator.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY alembic.ini ./
COPY migrations ./migrations
COPY shared ./shared
COPY worker ./worker
COPY scripts ./scripts
COPY devtools ./devtools
COPY schemas ./schemas

RUN useradd --create-home --uid 10001 renderq
USER renderq

CMD ["dramatiq", "worker.actors", "--processes", "2", "--threads", "8", "--skip-logging"]
