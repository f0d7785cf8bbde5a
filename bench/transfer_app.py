"""The app as the transfer benchmark runs it: the Procfile's web server and a Celery worker on a throwaway database
and var dir, and for a remote libvirt URI also a worker beside the host (LIBVIRT_HOSTS_HERE, a queue of its own);
what each party of a transfer costs in CPU and memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.common import children, cpu_seconds, free_port, peak_rss
from scripts.procfile import procfile_web_args

ROOT = Path(__file__).resolve().parent.parent


class App:
    """The app's web server and worker on a throwaway database; with beside_uri, a second worker on
    beside_queue that reaches that (remote) URI through this machine's libvirtd, as a worker started on a
    remote host would."""

    def __init__(self, var: Path, *, beside_uri: str | None = None) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        queue = f"virtstorage-bench-{os.getpid()}"
        self.beside_queue = f"{queue}-beside"
        self.env = dict(os.environ, VIRTSTORAGE_VAR_DIR=str(var), DATABASE_URL=f"sqlite:///{var}/bench.sqlite3",
                        CELERY_QUEUE=queue, DJANGO_SETTINGS_MODULE="virtstorage.settings", PYTHONUNBUFFERED="1")
        os.environ.update(self.env)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        self._log = open(var / "processes.log", "ab")
        self.web = self._start(procfile_web_args("127.0.0.1", port), self.env)
        self.workers = [self._worker(queue, self.env)]
        if beside_uri:
            self.workers.append(self._worker(self.beside_queue, dict(self.env, LIBVIRT_HOSTS_HERE=beside_uri)))

    def _start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def _worker(self, queue: str, env: dict[str, str]) -> subprocess.Popen:
        return self._start([sys.executable, "-m", "celery", "-A", "virtstorage", "worker", "-l", "WARNING",
                            "--concurrency=1", f"--queues={queue},{queue}-transfers", f"--hostname={queue}@%h",
                            "--without-mingle", "--without-gossip"], env)

    def stop(self) -> None:
        for proc in (self.web, *self.workers):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
        self._log.close()

    def _web_pids(self) -> list[int]:
        return [self.web.pid, *children(self.web.pid)]  # granian works in child processes

    def _worker_pids(self) -> list[int]:
        return [pid for proc in self.workers for pid in (proc.pid, *children(proc.pid))]  # as Celery does

    def reset_peaks(self) -> None:
        """Start each case from the current memory, so a peak belongs to its case (clear_refs 5)."""
        for pid in [*self._web_pids(), *self._worker_pids()]:
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                pass

    def pids(self) -> dict[str, list[int]]:
        """The processes of each party: the app's, libvirtd's, and Redis's (which carries relayed transfers)."""
        def named(name: str) -> list[int]:
            found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
            return [int(pid) for pid in found]

        return {"web": self._web_pids(), "worker": self._worker_pids(), "libvirtd": named("libvirtd"),
                "redis": named("redis-server")}

    @staticmethod
    def cpu(pids: dict[str, list[int]]) -> dict[str, float]:
        """CPU seconds used so far by each party of a transfer (the client is this process, virsh
        its child)."""
        children_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {**{party: cpu_seconds(members) for party, members in pids.items()},
                "client": time.process_time(), "virsh": children_usage.ru_utime + children_usage.ru_stime}

    def measured(self, call, *args) -> tuple[float, dict[str, float], object]:
        """(seconds, CPU seconds each party used, result) of call(*args)."""
        pids = self.pids()
        before = self.cpu(pids)
        started = time.perf_counter()
        result = call(*args)
        seconds = time.perf_counter() - started
        after = self.cpu(pids)
        return seconds, {k: round(after[k] - before[k], 2) for k in after if after[k] - before[k] >= 0.005}, result

    def peaks(self) -> dict[str, int]:
        return {"web_peak_rss_bytes": peak_rss(self._web_pids()),
                "worker_peak_rss_bytes": peak_rss(self._worker_pids())}
