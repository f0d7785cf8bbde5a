"""ASGI entry point, served by granian (Procfile `web:`) so that job progress can stream as
server-sent events and uploads and downloads move at disk speed.

Why the server options in the Procfile (and docker/Dockerfile):
- `--interface asginl`: ASGI without the lifespan protocol, which Django does not speak (with
  `asgi`, granian tries it, Django raises, granian logs a warning at every start).
- `--http 1`: HTTP/1.1 only, as browsers speak it without TLS; HTTP/2 would cap each stream at
  granian's 1 MiB flow-control window.
- `--no-ws`: the app has no websockets.
- `--loop uvloop`: chunk uploads hand blocks between the event loop and a view thread
  (volumes.asgi_upload), which costs less on uvloop: 1 GiB in 8 MiB PUTs took 1.9-2.5 s on uvloop,
  3.2-4.1 s on asyncio's loop. Named, not `auto`, so that a missing uvloop stops the start.
- `--workers-kill-timeout 3`: a stop waits for requests in flight, and an SSE stream only ends
  with its job; after 3 s the worker is killed instead of waiting.
- `--respawn-failed-workers`: a worker that dies is started again rather than leaving the main
  process up with nothing serving.
- `--http1-buffer-size 2097152`: the largest body message granian hands the app (default 408 KiB).
  A chunk upload's cost is mostly per message (a Python round trip each): with 2 MiB messages a
  1 GiB chunk PUT took 0.69-0.86 s and a core for 0.9 s, with 408 KiB 0.93-1.32 s and 1.6 s.
volumes.asgi_upload gathers body messages into blocks of its own. granian reads no further than
the app does (a body not yet read stays in the socket) and its send() waits for the socket, so
neither direction holds more than a few blocks per request in memory.
"""

import os

import django
from django.core.handlers.asgi import ASGIHandler


class LargeBlockASGIHandler(ASGIHandler):
    """Django's handler, sending each block of a streamed response in one message.

    Django cuts every block a streaming response yields into chunk_size (64 KiB) slices, each a
    copy and an awaited send(): a download yields 1 MiB blocks, which cost sixteen of each.
    """

    chunk_size = 1024 * 1024


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "virtstorage.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does
application = LargeBlockASGIHandler()

from volumes.asgi_upload import stream_chunk_bodies  # noqa: E402 - after Django is set up

application = stream_chunk_bodies(application)  # upload chunk bodies go to disk without a spool
