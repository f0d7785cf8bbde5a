"""Django settings. Everything comes from the environment with safe local defaults."""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.conf import global_settings

from virtstorage.environment import absolute_paths, env_bool, env_list, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VIRTSTORAGE_VAR_DIR", BASE_DIR / "var"))

# -- File modes ----------------------------------------------------------------------------------
# var/ holds the SQLite database (password hashes, sessions), the secret key, the admin's first
# password, the beat schedule and upload staging files: only the account the app runs as may read
# them, whatever umask the shell or service manager gave the process. Every process (web, workers,
# beat, manage.py) imports this module first, so all it creates is 0600 (files) / 0700 (dirs).
# `manage.py bootstrap` tightens the files of an older install. qemu (its own user) cannot enter a
# 0700 var/: pools whose volumes running VMs use belong elsewhere, e.g. /var/lib/libvirt/images.
os.umask(0o077)
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
if VAR_DIR.stat().st_mode & 0o077:
    try:
        VAR_DIR.chmod(0o700)
    except OSError as exc:  # not ours (a mounted volume): say so, do not refuse to start
        warnings.warn(f"could not make {VAR_DIR} private (0700): {exc}", RuntimeWarning, stacklevel=1)


SECRET_KEY = secret_key(VAR_DIR)  # from the environment, else generated once and kept in var/
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
CSRF_FAILURE_VIEW = "api.errors.csrf_failure"  # says what to do, in the page's language

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",  # login throttling: see the "Login throttling" block below
    # The apps, lowest first: an app imports only those above it in this list (tests/test_layout.py checks).
    "accounts",
    "audit",
    "notifications",
    "jobs",
    "hosts",
    "pools",
    "volumes",
    "history",
    "inventory",
    "vms",
    "provisioning",
    # The REST API (api/) stands above every app; its libraries: DRF, drf-spectacular and its vendored UI assets.
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the browser's Accept-Language (or the language cookie)
    "django.middleware.common.CommonMiddleware",
    "accounts.tokens.TokenMiddleware",  # a bearer token for the upload, download and job endpoints (before CSRF)
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.LoginRequired",  # Django's, sending an htmx request's page to the login page
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a lockout into the login page's answer (429)
    # A signed-in user's chosen language wins over the browser's. Innermost because it is synchronous only:
    # under ASGI Django runs every middleware from the outermost to the first synchronous-only one in one
    # thread, and those below it asynchronously, each of Django's own then hopping to a thread and back.
    # Here, none run below it: ~2 ms less CPU per request.
    "audit.log.RequestMiddleware",  # the request, for refusals audited inside a form's checks (synchronous too)
    "accounts.language.UserLanguageMiddleware",
]

ROOT_URLCONF = "virtstorage.urls"
# The volume table's sort indexes hold the row key as a non-key column (volumes/models.py) for PostgreSQL's
# index-only scans; SQLite ignores that, as it may: its indexes hold the row key anyway.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
ASGI_APPLICATION = "virtstorage.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
                "notifications.context_processors.bell",
            ],
            "builtins": ["virtstorage.templatetags.sizes", "virtstorage.templatetags.times"],
        },
    }
]

# Forms and their widgets render through Jinja2 where Django ships a Jinja2 version (its own form templates),
# through the Django engine where not (the admin's and auth's widgets): see virtstorage/form_renderer.py.
FORM_RENDERER = "virtstorage.form_renderer.FormRenderer"

# SQLite by default (WAL so the web server and the worker can write side by side);
# DATABASE_URL=postgres://... for production.
_sqlite_path = VAR_DIR / "virtstorage.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{_sqlite_path}"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests share a file database with the Celery worker and web server they start;
    # one per test run, so runs side by side do not meet.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-virtstorage-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
    # Web requests take their connection from a pool (psycopg_pool, Django's "pool" option) instead of opening
    # one each: under ASGI every request runs on a thread of its own, so persistent connections cannot serve;
    # a PostgreSQL connect with its authentication costs several milliseconds. Per web process, at most
    # DB_POOL_MAX_SIZE connections (0: no pool, e.g. behind PgBouncer); a request waits up to 10 s for one.
    # Workers keep one connection each instead (virtstorage/celery.py).
    if _pool_size := int(os.environ.get("DB_POOL_MAX_SIZE", "16")):
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": _pool_size, "timeout": 10}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Argon2 first, as Django advises (argon2-cffi): a password check costs ~0.25 CPU-seconds here against PBKDF2's
# 0.55 (1,000,000 rounds), and its 100 MiB of memory per hash makes guessing on GPUs dear. An account whose hash
# an older install made with PBKDF2 is rehashed with Argon2 at its next login.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher",
                    *(name for name in global_settings.PASSWORD_HASHERS if not name.endswith(".Argon2PasswordHasher"))]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# -- Login throttling (django-axes) --------------------------------------------------------------
# Failed logins are counted per user name and, separately, per client address; either reaching
# LOGIN_FAILURE_LIMIT within LOGIN_COOLOFF_MINUTES locks it out (even the right password) for that
# long, counted again from each attempt made while locked out. A successful login forgets its own
# failures (that account from that address: accounts/throttle.py says why). Every
# failure is kept in axes' AccessFailureLog (user name, address, user agent, time; admin pages under
# "Axes"). Unlock: `manage.py axes_reset` (all), axes_reset_username NAME, axes_reset_ip ADDRESS.
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
AUTHENTICATION_BACKENDS = [
    "accounts.throttle.ThrottleBackend",  # first: refuses a locked-out client
    "accounts.throttle.PacedModelBackend",  # Django's ModelBackend, PASSWORD_CHECKS_AT_ONCE per process
]
# A password check (Argon2, ~0.25 CPU-seconds on 2 threads) at most this many at once in each web process: a
# burst of logins queues behind itself instead of taking every core from the pages (accounts/throttle.py).
PASSWORD_CHECKS_AT_ONCE = int(os.environ.get("PASSWORD_CHECKS_AT_ONCE", "1"))
AXES_HANDLER = "accounts.throttle.ThrottleHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own, not the pair
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")))
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_ip"  # X-Forwarded-For only with BEHIND_PROXY
AXES_LOCKOUT_CALLABLE = "accounts.throttle.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no banner on every manage.py command; failures are still logged

# English and Spanish (locale/es: the seed's terms). The language comes from the browser's Accept-Language
# until a person picks one in the page header; then it is theirs (accounts.Preferences), on every device.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# WhiteNoise serves static files with a file iterator, which Django's ASGI handler reads in a thread and
# warns about on every file; the app's own streams (downloads, SSE) are asynchronous.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators",
                        module="django.core.handlers.asgi")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Security. Production sets HTTPS=1 (served over TLS, directly or behind a proxy that sets
# X-Forwarded-Proto with BEHIND_PROXY=1); `manage.py check --deploy` is then clean.
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000" if HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", SECURE_HSTS_SECONDS > 0)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY", False) else None
X_FRAME_OPTIONS = "DENY"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Every key and pub/sub channel the app names in Redis starts with this (jobs.progress.key). Pub/sub ignores
# Redis's database number, and job and upload ids restart at 1 in each database: two installations (or a test
# run beside `make run`) on one Redis need different prefixes, or a page follows the other one's job 5.
REDIS_KEY_PREFIX = os.environ.get("REDIS_KEY_PREFIX", "virtstorage")

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a job whose worker dies is not silently lost
CELERY_TASK_REJECT_ON_WORKER_LOST = False  # the reaper fails it instead of re-running it
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # one job per worker process at a time
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 24 * 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "virtstorage")
# Job modules that autodiscovery (each app's tasks.py) does not find: workers import them too.
CELERY_IMPORTS = ["volumes.tools_tasks", "volumes.info_job", "vms.adopt_tasks", "volumes.download_relay"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
INVENTORY_SYNC_SECONDS = int(os.environ.get("INVENTORY_SYNC_SECONDS", "60"))
JOB_HEARTBEAT_SECONDS = 5
# A worker process runs one task at a time on one thread, so it keeps its database connection across tasks
# (virtstorage/celery.py) instead of connecting for each job: seconds, checked for health before each task. Web
# requests cannot (under ASGI each request runs on a thread of its own): on PostgreSQL they use the pool above.
WORKER_DB_CONN_MAX_AGE = int(os.environ.get("WORKER_DB_CONN_MAX_AGE", "300"))
# Celery's Django fixup closes the connection around every task unless told to reuse it: it then closes it after
# this many tasks, and WORKER_DB_CONN_MAX_AGE decides in between (a job's start drops an old or broken one).
CELERY_DB_REUSE_MAX = 1000 if WORKER_DB_CONN_MAX_AGE else None
JOB_STALE_SECONDS = int(os.environ.get("JOB_STALE_SECONDS", "30"))
# A job queued this long on a queue that no worker listens to (a host's queue name mistyped, the worker beside a
# host down), or whose host was removed, is failed with the reason instead of waiting for ever.
JOB_UNSERVED_SECONDS = int(os.environ.get("JOB_UNSERVED_SECONDS", "120"))
# A streaming upload's job gives up (and removes its new volume) after this long without a chunk.
UPLOAD_IDLE_SECONDS = int(os.environ.get("UPLOAD_IDLE_SECONDS", "600"))
# A user's uploads that hold a transfer worker while their chunks arrive; more are written at complete.
UPLOAD_STREAMS_PER_USER = int(os.environ.get("UPLOAD_STREAMS_PER_USER", "1"))
# Unfinished uploads (and their staging files) are removed after this long without a change.
UPLOAD_EXPIRE_HOURS = float(os.environ.get("UPLOAD_EXPIRE_HOURS", "24"))
# Where an upload's bytes wait for its job (one file per upload, named by its id). The tests use a directory of
# their own per run, removed at its end: the files of their refused uploads stayed in var/uploads until the
# installation's hourly sweep, beside a developer's own.
UPLOAD_STAGING_DIR = Path(os.environ.get("UPLOAD_STAGING_DIR", VAR_DIR / "uploads"))
# Chunks are refused when the staging file system would keep less free space than this.
UPLOAD_STAGING_RESERVE_BYTES = int(os.environ.get("UPLOAD_STAGING_RESERVE_BYTES", str(1024**3)))
# Uploads into a host with a worker of its own go to that worker through Redis (volumes/relay.py), not through a
# staging file on the web server's disk: "auto" (hosts that name a queue), "always" or "never".
UPLOAD_RELAY = os.environ.get("UPLOAD_RELAY", "auto").strip().lower()
if UPLOAD_RELAY not in ("auto", "always", "never"):
    raise ValueError(f"UPLOAD_RELAY must be auto, always or never, not {UPLOAD_RELAY!r}")
# At most this many bytes of one relayed upload wait in Redis; a chunk waits this long for room, then gets a 503.
UPLOAD_RELAY_BUFFER_BYTES = int(os.environ.get("UPLOAD_RELAY_BUFFER_BYTES", str(64 * 1024**2)))
UPLOAD_RELAY_WAIT_SECONDS = float(os.environ.get("UPLOAD_RELAY_WAIT_SECONDS", "30"))
# Downloads from a host with a worker of its own are read by that worker and come through Redis
# (volumes/download_relay.py): "auto" (hosts that name a queue), "always" or "never" (the web reads them itself).
DOWNLOAD_RELAY = os.environ.get("DOWNLOAD_RELAY", "auto").strip().lower()
if DOWNLOAD_RELAY not in ("auto", "always", "never"):
    raise ValueError(f"DOWNLOAD_RELAY must be auto, always or never, not {DOWNLOAD_RELAY!r}")
# At most this many bytes of one relayed download wait in Redis; the web waits this long for the worker's answer.
DOWNLOAD_RELAY_BUFFER_BYTES = int(os.environ.get("DOWNLOAD_RELAY_BUFFER_BYTES", str(16 * 1024**2)))
DOWNLOAD_RELAY_WAIT_SECONDS = int(os.environ.get("DOWNLOAD_RELAY_WAIT_SECONDS", "30"))
# A download whose client takes nothing for this long is ended (its job failed, its streams closed).
DOWNLOAD_IDLE_SECONDS = int(os.environ.get("DOWNLOAD_IDLE_SECONDS", "120"))
# A live detach waits this long (after libvirt's own 5 s) for the guest to release the disk.
VM_DETACH_TIMEOUT_SECONDS = float(os.environ.get("VM_DETACH_TIMEOUT_SECONDS", "30"))
CELERY_BEAT_SCHEDULE = {
    "sync-all-hosts": {"task": "virtstorage.hosts.tasks.sync_all_hosts", "schedule": INVENTORY_SYNC_SECONDS},
    "reap-stale-jobs": {"task": "virtstorage.jobs.tasks.reap_stale_jobs", "schedule": 15.0},
    "fail-unserved-jobs": {"task": "virtstorage.jobs.tasks.fail_unserved_jobs", "schedule": 60.0},
    "expire-uploads": {"task": "volumes.transfer_tasks.expire_uploads", "schedule": 3600.0},
    "history-downsample": {"task": "history.tasks.downsample", "schedule": 600.0},
}

# -- Storage history (history/) -----------------------------------------------------------------
# The sync records one sample per pool per INVENTORY_SYNC_SECONDS, kept HISTORY_RAW_DAYS; beat's
# "history.tasks.downsample" rolls every complete hour into an hourly row (kept HISTORY_HOURLY_DAYS) and every
# complete day into a daily row (kept HISTORY_DAILY_DAYS), expires each, and refreshes the forecasts. Rows per
# pool, at most (history/downsample.py: row_bound; the same again per team grant): 7 d / (0.8 x 60 s) raw
# (10,080 at a steady 60 s) + 2,160 hourly + 730 daily = 15,493 (12,970 at a steady 60 s).
HISTORY_RAW_DAYS = float(os.environ.get("HISTORY_RAW_DAYS", "7"))
HISTORY_HOURLY_DAYS = float(os.environ.get("HISTORY_HOURLY_DAYS", "90"))
HISTORY_DAILY_DAYS = float(os.environ.get("HISTORY_DAILY_DAYS", "730"))
# Pools whose free space (less the reserve) runs out within this many days, at the last 7 days' trend, are
# flagged on the dashboard; admins are notified once when a pool enters this horizon.
FORECAST_HORIZON_DAYS = float(os.environ.get("FORECAST_HORIZON_DAYS", "14"))
# What counts against a team's quota is provisioning's rule; history (below provisioning) reads it through this
# hook, wired here by the project shell so no app imports upward (history/teams.py).
HISTORY_TEAM_LEDGER = "provisioning.quota.Ledger"

# The local libvirt host registered by `manage.py bootstrap`.
LOCAL_LIBVIRT_URI = os.environ.get("LOCAL_LIBVIRT_URI", "qemu:///system")
DEMO_POOL_NAME = os.environ.get("DEMO_POOL_NAME", "virtstorage-demo")
# Its directory: in libvirt's own images directory (a default pool root), not in var/. var/ is private to the
# app's account, so a VM's QEMU (Debian runs it as libvirt-qemu) could not reach a volume there; and a checkout
# in /root (root's home: a system tree no pool may be in) had no demo pool at all. libvirtd makes the directory.
DEMO_POOL_DIR = os.environ.get("DEMO_POOL_DIR", f"/var/lib/libvirt/images/{DEMO_POOL_NAME}")
# Set on a worker started beside a remote host: the registered URIs (comma-separated) whose libvirtd is this
# machine's. That worker reaches them through LOCAL_LIBVIRT_URI, so its transfers read and write the volume files
# in place (Host.direct_io) instead of sending every byte through libvirt's remote protocol; checked per process:
# both URIs must answer as the same daemon (virtstorage/virt/connection.py, serve_here).
LIBVIRT_HOSTS_HERE = env_list("LIBVIRT_HOSTS_HERE", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# Pool roots: a dir, fs or netfs pool's directory must be one of these or inside one, symlinks followed
# (system directories such as /etc or /var/spool are refused whatever this says). POOL_ROOTS holds absolute
# paths separated by os.pathsep (:) or commas; by default libvirt's images directory and var/pools.
DEFAULT_POOL_ROOTS = ["/var/lib/libvirt/images", os.path.abspath(VAR_DIR / "pools")]
POOL_ROOTS = absolute_paths("POOL_ROOTS", os.environ.get("POOL_ROOTS", ""), DEFAULT_POOL_ROOTS)
# Block devices, and LVM volume groups or zpools, that fs, disk, logical and zfs pools may use: shell-style
# patterns separated by commas or spaces (by-path names hold colons), e.g. "/dev/sdb /dev/disk/by-id/wwn-*" and
# "vmdata-*". Empty (the default): no such pool can be defined, built or started by the app; the host's own disks
# are not the app's to format, mount or split.
POOL_DEVICES = os.environ.get("POOL_DEVICES", "").replace(",", " ").split()
POOL_GROUPS = os.environ.get("POOL_GROUPS", "").replace(",", " ").split()
# Import roots: the only directories an admin's "Import an image file" reads host files from (symlinks followed,
# system and hidden directories refused whatever this says). Empty (the default): the pool roots, nothing else.
IMPORT_ROOTS = absolute_paths("IMPORT_ROOTS", os.environ.get("IMPORT_ROOTS", ""), [])

# Host URIs: keyfile= and known_hosts= in a host's libvirt URI may only name a file in this directory
# (every other URI parameter that makes the server run, read or trust something is refused).
LIBVIRT_KEY_DIR = Path(os.environ.get("LIBVIRT_KEY_DIR", VAR_DIR / "libvirt-keys"))

# -- REST API (api/) ----------------------------------------------------------------------------
# Personal tokens (accounts/tokens.py) or the browser's session (which keeps its CSRF check); every error
# as {"code", "message", "errors"} (api/errors.py); the OpenAPI schema generated by drf-spectacular.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.BearerTokenAuthentication",
                                       "rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasRole"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pages",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend", "api.filters.StrictOrdering"],
    "URL_FORMAT_OVERRIDE": None,  # ?format= filters volumes by format; the answer is JSON, the schema YAML or JSON
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "virtstorage API",
    "DESCRIPTION": "libvirt storage as a team: hosts, pools, volumes, jobs, uploads, requests and approvals. "
                   "Authenticate with `Authorization: Bearer <token>` (make one at /accounts/tokens/).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api.schema.error_responses"],
    "ENUM_NAME_OVERRIDES": {"JobStateEnum": "jobs.models.Job.State", "UploadStateEnum": "volumes.models.Upload.State"},
}

# -- E-mail (notifications) ----------------------------------------------------------------------
# Notifications are e-mailed by a worker (never in a request) to users with an address. Without
# EMAIL_HOST they are printed on the worker's console; with it, sent by SMTP (EMAIL_USE_TLS: STARTTLS).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                               else "django.core.mail.backends.console.EmailBackend")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587" if EMAIL_USE_TLS else "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_TIMEOUT = 20  # seconds: a mail server that does not answer never holds a worker for long
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH") or None  # the file backend's directory (tests)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "virtstorage@localhost")
