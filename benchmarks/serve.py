"""Server benchmark: requests/s, latency and CPU per request, torch fp32 against the int8 default, in one run.

Starts ``anlam serve`` itself on a free loopback port, once per mode (by default ``--precision fp32``,
the model's own torch weights, then ``--precision int8``, its OpenVINO int8 export, which
``anlam serve`` runs by default when it passed its quality check; ``--compare batching`` instead
runs one precision with micro-batching on and off), sends one-text ``/v1/embeddings`` requests
from 1, 8 and 32 concurrent clients (by default the ML-TR test user questions, 15 tokens on
average: embedding a user's query is the online use; ``--texts sentences`` sends the ML-TR test
sentences, 41 tokens on average), and reports requests/s, p50/p99 latency, errors, the server's
CPU time per request (less sensitive than requests/s to other work on a shared machine) and its
peak RSS. The load generator is a minimal keep-alive HTTP/1.1 client on asyncio streams (as wrk
is), so it takes little of the CPU it measures. Bounded: a fixed number of requests per level,
and a time limit per level. The int8 export is built (once) before its server starts.

Targets (issue 18): at 32 clients int8 >= 2.5x the requests/s of torch fp32 with a lower p99, and
one short query well under 10 ms of server CPU with int8. (Issue 7, ``--compare batching``: at 32
clients over >= 2,000 requests, 0 errors and batching on >= 2x the requests/s of batching off.)

    python benchmarks/serve.py                        # the built-in tuned model, fp32 vs int8
    python benchmarks/serve.py --quick                # a smoke run (200 requests at 32 clients)
    python benchmarks/serve.py --threads 1            # a shared machine: one model thread
    python benchmarks/serve.py --compare batching --precision fp32
    python benchmarks/serve.py --model runs/tuned --json out/serve-bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402


def load_texts(kind: str) -> list[str]:
    """ML-TR test user questions ("queries") or pair sentences ("sentences"), distinct, in a fixed order."""
    from anlam.data import mltr_pairs, mltr_retrieval

    if kind == "queries":
        return list(dict.fromkeys(mltr_retrieval("test")[0].values()))
    frame = mltr_pairs("test")
    return list(dict.fromkeys([*frame["sentence_0"], *frame["sentence_1"]]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health(port: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).json()


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident set size (Linux ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(model: str, port: int, extra: list[str], timeout: float = 300) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "anlam", "serve", "--model", model, "--port", str(port), "--no-paraphrase", *extra]
    env = {k: v for k, v in os.environ.items() if k != "ANLAM_API_KEY"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server did not answer /healthz within {timeout:.0f} s")


async def post_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 keep-alive POST: a load generator light enough not to starve the server it measures."""
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
    length = int(next(v for k, v in fields.items() if k.lower() == "content-length"))
    return int(head[0].split()[1]), await reader.readexactly(length)


async def load(port: int, texts: list[str], clients: int, requests: int, time_limit: float) -> dict:
    """``requests`` one-text embedding requests from ``clients`` concurrent connections (stops at ``time_limit``)."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + time_limit

    async def client() -> None:
        nonlocal issued, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while issued < requests and time.perf_counter() < deadline:
            body = json.dumps({"input": texts[issued % len(texts)], "model": "anlam"}).encode()
            issued += 1
            start = time.perf_counter()
            try:
                status, payload = await post_json(reader, writer, "/v1/embeddings", body)
                ok = status == 200 and len(json.loads(payload)["data"]) == 1
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
                ok = False
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            latencies.append(time.perf_counter() - start)
            errors += not ok
        writer.close()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    ms = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
            "rps": round(len(latencies) / elapsed, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "client_cpu_ms_per_request": round(cpu * 1000 / max(len(latencies), 1), 2)}


def run_mode(model: str, mode: str, server_args: list[str], texts: list[str], levels: dict[int, int], time_limit: float,
             extra: list[str]) -> dict:
    port = free_port()
    proc = start_server(model, port, [*server_args, *extra])
    try:
        asyncio.run(load(port, texts[::-1], 4, 40, time_limit))  # warm-up: first passes, allocator, connections
        rows = []
        for clients, requests in levels.items():
            cpu, before = cpu_seconds(proc.pid), health(port)
            row = asyncio.run(load(port, texts, clients, requests, time_limit))
            row["server_cpu_ms_per_request"] = round((cpu_seconds(proc.pid) - cpu) * 1000 / max(row["requests"], 1), 1)
            after = health(port)
            row["mean_batch"] = round((after["encoded"] - before["encoded"]) / max(after["batches"] - before["batches"], 1), 1)
            print(f"  {mode:>12} {clients:>3} clients: {row['requests']:>5} requests "
                  f"{row['rps']:>7.1f} req/s  p50 {row['p50_ms']:>7.1f} ms  p99 {row['p99_ms']:>7.1f} ms  "
                  f"server CPU {row['server_cpu_ms_per_request']:>6.1f} ms/request  mean batch {row['mean_batch']:>5.1f}  "
                  f"errors {row['errors']}", file=sys.stderr)
            rows.append(row)
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    return {"mode": mode, "server_args": server_args, "levels": rows, "peak_rss_mib": round(rss, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: the built-in tuned model)")
    parser.add_argument("--compare", choices=("precision", "batching"), default="precision",
                        help="torch fp32 vs int8 (default), or micro-batching on vs off at --precision")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="int8",
                        help="the precision --compare batching uses")
    parser.add_argument("--requests", type=int, default=2000, help="requests at 32 clients (1 and 8 get 1/20 and 1/5)")
    parser.add_argument("--time-limit", type=float, default=120, help="seconds per level at most")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 requests at 32 clients, 20 s per level")
    parser.add_argument("--texts", choices=("queries", "sentences"), default="queries",
                        help="what each request embeds (default: ML-TR test user questions)")
    parser.add_argument("--threads", type=int, help="the server's CPU threads (anlam serve --threads)")
    parser.add_argument("--device", help="the server's device (anlam serve --device), e.g. cpu on a GPU box")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.time_limit = 200, 20.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a killed run still stops its server
    extra = [*(["--threads", str(args.threads)] if args.threads else []), *(["--device", args.device] if args.device else [])]
    from anlam.models.embedder import resolve_model_path

    args.model = resolve_model_path(args.model)
    if args.compare == "precision":
        modes = {"torch fp32": ["--precision", "fp32"], "int8": ["--precision", "int8"]}
    else:
        modes = {"batching on": ["--precision", args.precision],
                 "batching off": ["--precision", args.precision, "--no-batching"]}
    if any("int8" in server_args for server_args in modes.values()):
        from anlam.export.fast import ensure_int8

        start = time.perf_counter()
        folder, _ = ensure_int8(args.model)  # first use builds it; the server must not time out doing so
        print(f"int8 export ready in {time.perf_counter() - start:.0f} s: {folder}", file=sys.stderr)
    levels = {1: max(args.requests // 20, 10), 8: max(args.requests // 5, 40), 32: args.requests}
    texts = load_texts(args.texts)
    print(f"model {args.model}; {len(texts)} distinct ML-TR test {args.texts}; {os.cpu_count()} CPU(s); "
          f"load average {os.getloadavg()[0]:.1f}; server options {' '.join(extra) or '(none)'}", file=sys.stderr)
    results = [run_mode(args.model, mode, server_args, texts, levels, args.time_limit, extra)
               for mode, server_args in modes.items()]
    first, second = results
    a, b = first["levels"][-1], second["levels"][-1]
    ratio = b["rps"] / a["rps"]
    if args.compare == "precision":
        single = second["levels"][0]["server_cpu_ms_per_request"]
        met = ratio >= 2.5 and b["p99_ms"] < a["p99_ms"] and a["errors"] == b["errors"] == 0 and single < 10
        verdict = (f"at 32 clients int8 gives {ratio:.2f}x the requests/s of torch fp32, p99 {b['p99_ms']} ms vs "
                   f"{a['p99_ms']} ms; one query at 1 client costs {single} ms of server CPU with int8; "
                   f"target (>= 2.5x, lower p99, 0 errors, < 10 ms): {'met' if met else 'NOT met'}")
    else:
        ratio = a["rps"] / b["rps"]
        met = a["requests"] >= 2000 and b["requests"] >= 2000 and a["errors"] == b["errors"] == 0 and ratio >= 2
        verdict = (f"at 32 clients batching on gives {ratio:.2f}x the requests/s of batching off; "
                   f"target (>= 2,000 requests, 0 errors, >= 2x): {'met' if met else 'NOT met'}")
    report = {"model": args.model, "cpus": os.cpu_count(), "texts": args.texts, "load_average": os.getloadavg(),
              "compare": args.compare, "server_options": extra, "modes": results, "ratio_at_32": round(ratio, 2),
              "target_met": met}

    print("\n| mode | clients | requests | errors | req/s | p50 ms | p99 ms | server CPU ms/request | texts per encode |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in results:
        for row in mode["levels"]:
            print(f"| {mode['mode']} | {row['clients']} | {row['requests']} | {row['errors']} | {row['rps']} | "
                  f"{row['p50_ms']} | {row['p99_ms']} | {row['server_cpu_ms_per_request']} | {row['mean_batch']} |")
    for mode in results:
        print(f"\n{mode['mode']}: server peak RSS {mode['peak_rss_mib']} MiB")
    print(f"\n{verdict}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
