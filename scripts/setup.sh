#!/usr/bin/env bash
# Installs and starts everything virtstorage needs on a Debian/Ubuntu host.
# Idempotent: a second run only checks. Works with systemd and without it
# (containers, CI), where daemons are started directly.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES="libvirt-daemon-system libvirt-clients libvirt-dev qemu-utils qemu-system-x86 \
redis-server pkg-config python3-venv python3-dev gcc scrub gettext procps"
if [ "${WITH_TEST_TOOLS:-0}" = "1" ]; then
  APT_PACKAGES="$APT_PACKAGES chromium postgresql"
fi

missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "==> Installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

# The compose file's static check (tests/test_docker.py) needs Debian's docker-compose, not a Docker engine.
if [ "${WITH_TEST_TOOLS:-0}" = "1" ] && ! command -v docker-compose >/dev/null; then
  echo "==> Installing docker-compose (for checking docker/compose.yaml)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose \
    || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose; }
fi

have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

start_daemon() {  # start_daemon NAME CHECK_CMD START_CMD...
  local name=$1 check=$2; shift 2
  if eval "$check" >/dev/null 2>&1; then return 0; fi
  echo "==> Starting $name"
  if have_systemd; then
    $SUDO systemctl start "$name" || "$@"
  else
    "$@"
  fi
  for _ in $(seq 1 50); do eval "$check" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "error: $name did not start" >&2; exit 1
}

start_daemon redis-server "redis-cli ping" $SUDO redis-server --daemonize yes --bind 127.0.0.1 --save '' --appendonly no
start_daemon virtlogd "pgrep -x virtlogd" $SUDO virtlogd -d
start_daemon libvirtd "virsh -c qemu:///system version" $SUDO libvirtd -d

if [ "${WITH_TEST_TOOLS:-0}" = "1" ]; then
  # The suite runs on PostgreSQL (Makefile: TEST_DATABASE_URL), as production does: a local cluster, a role
  # that may create the test databases, on 127.0.0.1 only.
  # From /: the postgres account may not enter this checkout's directory (psql would warn that it cannot).
  as_postgres() { (cd / && if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi); }
  cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1 " " $2}')
  start_daemon postgresql "pg_isready -q -h 127.0.0.1" $SUDO pg_ctlcluster $cluster start
  if ! as_postgres psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='vstest'" | grep -q 1; then
    echo "==> Creating the PostgreSQL role and database for the tests (vstest)"
    as_postgres psql -qc "CREATE ROLE vstest LOGIN CREATEDB PASSWORD 'vstest'"
    as_postgres createdb -O vstest vstest
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> Creating .venv"
  $PY -m venv .venv
fi
REQ=requirements.txt
[ "${WITH_TEST_TOOLS:-0}" = "1" ] && REQ=requirements-dev.txt
stamp=".venv/.installed-$(sha256sum requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)-$REQ"
if [ ! -f "$stamp" ]; then
  echo "==> Installing Python requirements ($REQ)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r "$REQ"
  touch "$stamp"
fi
# The page languages (locale/*/LC_MESSAGES/django.po): compiled here, never committed, so they match the text.
.venv/bin/python manage.py compilemessages --ignore=.venv -v 0
# var/ holds the database, the secret key and upload staging files: this account's alone.
install -d -m 0700 var
