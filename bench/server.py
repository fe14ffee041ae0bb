"""The app under gunicorn (or granian) on loopback, wrk against it, and the CPU each side
used."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, VAR, env_int

BIND = os.environ.get("BENCH_BIND", "127.0.0.1:8765")
BASE = f"http://{BIND}"
CPUS = os.cpu_count() or 1
WRK_THREADS = env_int("BENCH_WRK_THREADS", 1)
# Seconds a server has to answer after its start (a busy machine boots Django slowly).
START_TIMEOUT = env_int("BENCH_START_TIMEOUT", 60)


# --- the server ----------------------------------------------------------------------


@dataclass
class Server:
    """gunicorn (``kind="gunicorn"``: sync workers, or gthread with more than one thread)
    or granian (``kind="granian"``: the production server, ADR 0015, ``threads`` blocking
    threads per worker) serving inbo.wsgi on loopback."""

    workers: int
    threads: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    kind: str = "gunicorn"

    @property
    def label(self) -> str:
        if self.kind == "granian":
            return f"granian {self.workers}x{self.threads}"
        worker_class = "gthread" if self.threads > 1 else "sync"
        return f"gunicorn {worker_class} {self.workers}x{self.threads}"

    def command(self) -> list[str]:
        if self.kind == "granian":
            return self._granian_command()
        return [
            str(Path(sys.executable).with_name("gunicorn")),
            "inbo.wsgi:application",
            "--bind",
            BIND,
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--worker-class",
            "gthread" if self.threads > 1 else "sync",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--backlog",
            "2048",
            "--worker-tmp-dir",
            "/dev/shm",
            "--no-control-socket",
            "--log-level",
            "warning",
        ]

    def _granian_command(self) -> list[str]:
        """inbo/server.py's command line (what the image runs), with this run's workers,
        threads and bind, no access log and warnings only."""
        from inbo.server import granian_arguments

        host, port = BIND.rsplit(":", 1)
        extra = ["--workers", str(self.workers), "--blocking-threads", str(self.threads)]
        extra += ["--host", host, "--port", port, "--no-access-log", "--log-level", "warning"]
        return [sys.executable, "-m", "granian", *granian_arguments(extra)]

    def start(self) -> None:
        log = open(VAR / f"{self.kind}.log", "a")  # noqa: SIM115 - closed with the process
        log.write(f"--- {datetime.now(UTC).isoformat()} {' '.join(self.command())}\n")
        log.flush()
        self.proc = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: {self.kind} exited; see {VAR / self.kind}.log")
            try:
                with urllib.request.urlopen(f"{BASE}/health/live/", timeout=1) as response:
                    if response.status == 200 and len(self.worker_pids()) >= self.workers:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"bench: {self.kind} did not answer within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                pids.append(int(entry.name))
        return pids

    def cpu_seconds(self) -> float:
        """User + system CPU time of the master and its workers so far."""
        assert self.proc is not None
        return sum(_process_cpu(pid) for pid in [self.proc.pid, *self.worker_pids()])


# --- the load generator --------------------------------------------------------------


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _postgres_pids() -> list[int]:
    """The PostgreSQL backends serving the benchmark database (the app's connections)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


@dataclass
class CpuSnapshot:
    wrk: float
    app: float
    postgres: dict[int, float]
    redis: float
    machine: tuple[int, int]


def cpu_snapshot(server: Server) -> CpuSnapshot:
    from inbo import redis as inbo_redis

    redis_pid = int(inbo_redis.state().info("server")["process_id"])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished children: the wrk runs
    return CpuSnapshot(
        wrk=usage.ru_utime + usage.ru_stime,
        app=server.cpu_seconds(),
        postgres={pid: _process_cpu(pid) for pid in _postgres_pids()},
        redis=_process_cpu(redis_pid),
        machine=_machine_cpu(),
    )


def cpu_used(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds each part used between two snapshots; ``busy`` is the whole machine's."""
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "wrk": after.wrk - before.wrk,
        "app": after.app - before.app,
        "postgres": sum(c - before.postgres.get(p, 0.0) for p, c in after.postgres.items()),
        "redis": after.redis - before.redis,
        "busy": (after.machine[0] - before.machine[0]) / tick,
    }


def cpu_shares(used: dict[str, float], seconds: float) -> dict[str, float]:
    """Each part's CPU as a percentage of the whole machine (all cores) over ``seconds``.

    ``rest`` is everything else that was busy meanwhile: PostgreSQL's parallel query
    workers (short-lived processes, gone before they can be attributed), other databases'
    backends, other people's processes on a shared machine.
    """
    parts = ("wrk", "app", "postgres", "redis")
    out = {k: round(100 * used[k] / seconds / CPUS, 1) for k in parts}
    out["machine"] = round(100 * used["busy"] / seconds / CPUS, 1)
    out["rest"] = round(max(0.0, out["machine"] - sum(out[k] for k in parts)), 1)
    return out


def wrk(
    server: Server,
    path: str,
    script: str,
    args: list[str],
    *,
    connections: int,
    duration: int,
) -> dict:
    """One wrk run; its figures, plus the CPU the client and the server used meanwhile."""
    threads = max(1, min(WRK_THREADS, connections))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        f"bench/wrk/{script}",
        BASE + path,
        "--",
        *args,
        str(threads),
    ]
    before = cpu_snapshot(server)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    used = cpu_used(before, cpu_snapshot(server))
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"bench: wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    seconds = raw["duration_us"] / 1e6
    latency = {k: v / 1000 for k, v in raw["latency_us"].items()}
    errors = sum(raw["errors"].values())
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(latency["p50"], 2),
        "p90_ms": round(latency["p90"], 2),
        "p95_ms": round(latency["p95"], 2),
        "p99_ms": round(latency["p99"], 2),
        "max_ms": round(latency["max"], 2),
        "mean_ms": round(latency["mean"], 2),
        "errors": errors,
        "errors_detail": raw["errors"],
        "connections": connections,
        "client_threads": threads,
        # Shares of the whole machine (all cores) while the run lasted, and the CPU time
        # one request cost the app, PostgreSQL and Redis (robust to a busy machine).
        "cpu_pct": cpu_shares(used, seconds),
        "cpu_ms_per_request": {
            k: round(1000 * used[k] / max(raw["requests"], 1), 2)
            for k in ("app", "postgres", "redis")
        },
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
