"""ASGI entry point: served by uvicorn so job progress can stream as server-sent events."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "virtstorage.settings")
application = get_asgi_application()

from volumes.asgi_upload import stream_chunk_bodies  # noqa: E402 - after Django is set up

application = stream_chunk_bodies(application)  # upload chunk bodies go to disk without a spool
