"""Set up a working installation on embedded defaults. Safe to run again: it reuses what exists."""

import os
import secrets
import stat
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.roles import ADMIN, ensure_role_groups, grant
from hosts.models import Host
from inventory.sync import sync_host
from virtstorage.virt import ObjectNotFound, VirtError, open_host
from virtstorage.virt import pools as vpools


class Command(BaseCommand):
    help = "Migrate, create roles, register the local libvirt host with a demo dir pool, and an admin login."

    def add_arguments(self, parser):
        parser.add_argument("--no-demo-pool", action="store_true")
        parser.add_argument("--admin-user", default="admin")

    def handle(self, no_demo_pool=False, admin_user="admin", **options):
        self._private_files()
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        ensure_role_groups()
        self._admin(admin_user)
        host, _ = Host.objects.get_or_create(uri=settings.LOCAL_LIBVIRT_URI, defaults={"name": "local"})
        if not no_demo_pool:
            self._demo_pool(host)
        try:
            result = sync_host(host, refresh=True)
        except VirtError as exc:
            self.stderr.write(f"warning: the first sync of {host.uri} failed: {exc}")
            return
        if result is None:
            self.stderr.write(f"warning: {host.uri} is unreachable: {host.last_error}")
        else:
            self.stdout.write(f"Host {host.name} ({host.uri}): {result}")

    def _private_files(self) -> None:
        """Files of an older install (made under a umask of 022) readable by this account only.

        New ones are private already (settings.py sets the umask); the demo pool under var/pools
        and the static files keep their modes: var/ itself (0700) closes them to others.
        """
        var = Path(settings.VAR_DIR)
        db = settings.DATABASES["default"]
        staging = Path(settings.UPLOAD_STAGING_DIR)
        paths = [var / "secret_key", var / "admin-password", staging, *sorted(staging.glob("*.part"))]
        paths += sorted(Path(settings.CELERY_BEAT_SCHEDULE_FILENAME).parent.glob(
            Path(settings.CELERY_BEAT_SCHEDULE_FILENAME).name + "*"))  # shelve adds .db, .dir, ... by dbm
        if db["ENGINE"] == "django.db.backends.sqlite3" and str(db["NAME"]) != ":memory:":
            paths += [Path(f"{db['NAME']}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]
        for path in [var, *paths]:
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue  # the file it points to is not ours to change
            mode = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) & 0o077:
                try:
                    path.chmod(mode)
                except OSError as exc:
                    self.stderr.write(f"warning: could not make {path} private ({mode:o}): {exc}")
                    continue
                self.stdout.write(f"Made {path} private ({mode:o})")

    def _admin(self, username: str) -> None:
        User = get_user_model()
        password_file = Path(settings.VAR_DIR) / "admin-password"
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin login: {username} (password printed on first run; "
                              f"reset with: manage.py changepassword {username})")
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        grant(user, ADMIN)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Created admin login: {username} / {password}"))

    def _demo_pool(self, host: Host) -> None:
        try:  # libvirt's images directory is a default pool root
            path = vpools.check_pool_target(settings.DEMO_POOL_DIR, settings.POOL_ROOTS)
        except ValueError as exc:
            self.stderr.write(f"warning: not setting up the demo pool: {exc}")
            return
        name = settings.DEMO_POOL_NAME
        try:
            with open_host(host.uri) as lv:
                try:
                    pool = lv.pool(name)
                except ObjectNotFound:
                    pool = None
                if pool is not None and not pool.active and _gone(pool.target_path):
                    # An older version's demo pool, in the var/pools of a checkout since removed: nothing to keep.
                    vpools.undefine_pool(lv, name)
                    self.stdout.write(f"Forgot demo pool {name}: its directory {pool.target_path} is gone")
                    pool = None
                if pool is None:  # libvirtd (root) builds the directory: this account may not write there
                    lv.define_dir_pool(name, path, build=True, start=True, autostart=True)
                    self.stdout.write(f"Defined and started demo pool {name} at {path}")
                elif not pool.active:
                    lv.start_pool(name)
        except VirtError as exc:
            self.stderr.write(f"warning: could not set up the demo pool: {exc}")


def _gone(path: str) -> bool:
    """The path does not exist (a directory this account may not look into is not gone)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False
