"""Benchmark ``POST /v1/tag`` over loopback: latency at 4 concurrent clients, then 4× overload.

Starts ``fashionlens serve`` (uvicorn, one worker) on 127.0.0.1, waits for ``/readyz``, then

1. *steady*: ``--clients`` (4) clients each send ``--requests`` requests back to back with one
   CCP photo (825×550 by default: a 550-px-wide CCP photo upscaled, or ``--photo``) → p50/p90/p99;
2. *overload*: 4 × the server's capacity (concurrency + queue) clients at once, ``--overload-rounds``
   times → counts of 200/503/other, requests without an answer (must be 0) and the server's RSS
   before/after (must stay bounded).

    python benchmarks/bench_service.py --out runs/bench-service.json

Loopback only; the server runs with the settings given here (2 model slots, queue 8, 1 thread each).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# `fashionlens serve` through its own parser (only the serve command, not the whole CLI)
_SERVE = ("import argparse, sys; from fashionlens.cli.serve import register; p = argparse.ArgumentParser(); "
          "register(p.add_subparsers(dest='command', required=True)); a = p.parse_args(sys.argv[1:]); "
          "sys.exit(a.func(a))")


def _photo(path: str | None) -> bytes:
    if path is None:
        folder = ROOT.parent / "shared" / "datasets" / "ccp" / "photos"
        path = str(min(folder.glob("*.jpg")))
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (550, 825) and im.size != (825, 550):
            im = im.resize((550, 825) if im.height >= im.width else (825, 550), Image.BICUBIC)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return round(total, 1)


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))] * 1000, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", default=None, help="photo to send (default: the first CCP photo at 825×550)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=50, help="requests per client in the steady phase")
    ap.add_argument("--overload-rounds", type=int, default=5)
    ap.add_argument("--whole-image", action="store_true", help="tag without detection")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    data = _photo(args.photo)
    port = _free_port()
    env = {**os.environ, "FASHIONLENS_API_KEYS": ""}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the server writes to it until the end
    server = subprocess.Popen([sys.executable, "-c", _SERVE, "serve", "--host", "127.0.0.1", "--port",
                               str(port), "--concurrency", str(args.concurrency), "--queue", str(args.queue),
                               "--threads", "1"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    params = {"whole_image": "true"} if args.whole_image else {}
    result: dict = {"photo_bytes": len(data), "clients": args.clients, "whole_image": args.whole_image}
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            t0 = time.time()
            while True:
                try:
                    if c.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.time() - t0 > 180 or server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError("the server did not become ready: " + log.read().decode()[-2000:])
                time.sleep(0.5)
            result["startup_s"] = round(time.time() - t0, 1)
            for _ in range(5):  # warm-up
                c.post("/v1/tag", params=params, files=[("images", ("p.jpg", data, "image/jpeg"))])
            result["rss_mb_after_warmup"] = _rss_mb(server.pid)

        def one(client: httpx.Client) -> tuple[int, float]:
            t = time.perf_counter()
            try:
                r = client.post("/v1/tag", params=params, files=[("images", ("p.jpg", data, "image/jpeg"))])
                return r.status_code, time.perf_counter() - t
            except httpx.HTTPError:
                return -1, time.perf_counter() - t

        def steady_client(_: int) -> list[tuple[int, float]]:
            with httpx.Client(base_url=base, timeout=60) as client:
                return [one(client) for _ in range(args.requests)]

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            answers = [a for lst in pool.map(steady_client, range(args.clients)) for a in lst]
        wall = time.perf_counter() - t0
        lat = [t for s, t in answers if s == 200]
        result["steady"] = {"requests": len(answers), "ok": len(lat), "p50_ms": _pct(lat, 50),
                            "p90_ms": _pct(lat, 90), "p99_ms": _pct(lat, 99), "mean_ms": round(statistics.mean(lat) * 1000, 1),
                            "throughput_rps": round(len(lat) / wall, 2),
                            "statuses": {str(s): sum(1 for x, _ in answers if x == s) for s in {x for x, _ in answers}}}

        n = 4 * (args.concurrency + args.queue)
        counts: dict[str, int] = {}
        rss = [_rss_mb(server.pid)]
        with ThreadPoolExecutor(n) as pool:
            clients = [httpx.Client(base_url=base, timeout=60) for _ in range(n)]
            for _ in range(args.overload_rounds):
                for status, _ in pool.map(one, clients):
                    counts[str(status)] = counts.get(str(status), 0) + 1
                rss.append(_rss_mb(server.pid))
            for cl in clients:
                cl.close()
        sent = n * args.overload_rounds
        result["overload"] = {"clients": n, "rounds": args.overload_rounds, "sent": sent, "statuses": counts,
                              "no_answer": counts.get("-1", 0), "answered": sent - counts.get("-1", 0),
                              "rss_mb": rss, "server_alive": server.poll() is None}
        with httpx.Client(base_url=base, timeout=10) as c:
            metrics = c.get("/metrics").text
        result["metrics_overloaded"] = next((float(line.split()[-1]) for line in metrics.splitlines()
                                             if line.startswith('fashionlens_errors_total{code="overloaded"}')), 0.0)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
