# syntax=docker/dockerfile:1
# INBO backend: one image for every process role. The default command runs the web server
# (granian through inbo/server.py, ADR 0015); docker-compose.yml runs the Celery worker and
# beat from the same image, and puts nginx in front of the web server.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=inbo.settings \
    WEB_CONCURRENCY=2

WORKDIR /app

# The processes run as an unprivileged user that cannot write the application code.
RUN groupadd --system --gid 10001 inbo \
 && useradd --system --uid 10001 --gid inbo --create-home --home-dir /home/inbo \
      --shell /usr/sbin/nologin inbo

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
# The pinned list is read from pyproject.toml itself, so there is no second list to keep in step.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The project itself (what .dockerignore lets through), installed from pyproject.toml.
COPY . .
RUN pip install . \
 && rm -rf build ./*.egg-info \
 && python -c "import kombu.transport.redis"
# ^ The worker and beat talk to Redis through kombu's Redis transport, which needs the
#   celery[redis] extra (it imports packaging); a missing extra fails the build, not the worker.

# Static files are collected at build time into /app/staticfiles (hashed and compressed; served
# by WhiteNoise). Settings need a SECRET_KEY to load: a dummy one, set for this step only, so it
# never reaches the running image. Nothing here connects to PostgreSQL or Redis.
RUN SECRET_KEY=collectstatic-build-step-only-not-a-secret \
    DEBUG=false \
    STATIC_MANIFEST=true \
    python manage.py collectstatic --noinput --verbosity 1

USER inbo

EXPOSE 8000

# granian: WEB_CONCURRENCY workers x WEB_THREADS threads, access log on stdout, requests in
# flight finish on SIGTERM (up to WEB_GRACEFUL_TIMEOUT_SECONDS); see .env.example, "Web server".
CMD ["python", "-m", "inbo.server", "--host", "0.0.0.0", "--port", "8000"]
