#!/usr/bin/env bash
# Runs the whole app in the foreground: web (ASGI), Celery worker, Celery beat. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python manage.py bootstrap
echo
echo "==> virtstorage is starting at http://${VIRTSTORAGE_HOST:-127.0.0.1}:${VIRTSTORAGE_PORT:-8000}/"
echo "    (admin password, if you missed it: var/admin-password)"
echo
exec .venv/bin/honcho start -f Procfile
