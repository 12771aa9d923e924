"""Runs a Tributary worker with a rate-limited datagen source and a file sink, scrapes its
/metrics every second, pauses the sink for a while half-way (so lag and end-to-end latency
visibly build up and drain), and plots what a Grafana dashboard would show to a PNG.

    python deploy/plot_metrics.py --binary target/release/tributary --out docs/img/metrics-run.png

Needs matplotlib (scripts/versions.sh PY_PACKAGES).
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")


def parse(text):
    """Prometheus text -> list of (name, labels dict, value)."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def value(samples, name, **labels):
    for n, l, v in samples:
        if n == name and all(l.get(k) == want for k, want in labels.items()):
            return v
    return None


def buckets(samples, name, **labels):
    out = {}
    for n, l, v in samples:
        if n == name + "_bucket" and all(l.get(k) == want for k, want in labels.items()):
            out[float(l["le"])] = v
    return sorted(out.items())


def quantile(q, before, after):
    """histogram_quantile over the bucket increase between two scrapes (linear in bucket)."""
    inc = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    if not inc or inc[-1][1] <= 0:
        return None
    rank = q * inc[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in inc:
        if n >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/tributary")
    ap.add_argument("--out", default="docs/img/metrics-run.png")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--pause-at", type=int, default=20)
    ap.add_argument("--pause-for", type=int, default=10)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="tributary-plot-")
    conns = os.path.join(work, "connectors")
    os.mkdir(conns)
    with open(os.path.join(conns, "gen.yaml"), "w") as f:
        f.write(
            "name: gen\nconfig:\n  connector.class: datagen\n  topic.prefix: shop\n"
            f"  tables: [orders, customers]\n  rate: {args.rate}\n  total: 10000000\n"
        )
    with open(os.path.join(conns, "sink.yaml"), "w") as f:
        f.write(
            "name: sink\nconfig:\n  connector.class: FileStreamSink\n  topics.regex: shop\\..*\n"
            f"  file: {work}/out.jsonl\n"
        )
    log = open(os.path.join(work, "worker.log"), "w")
    worker = subprocess.Popen(
        [args.binary, "run", "--rest-port", "0", "--data-dir", os.path.join(work, "data"),
         "--connectors-dir", conns],
        stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "TRIBUTARY_LOG": "info"},
    )
    url = None
    for _ in range(600):
        text = open(os.path.join(work, "worker.log")).read()
        m = re.search(r"REST API ready.*url=(\S+)", text)
        if m:
            url = m.group(1)
            break
        time.sleep(0.1)
    if url is None:
        worker.kill()
        raise SystemExit("worker did not start; see " + log.name)

    scrapes = []
    start = time.time()
    paused = False
    try:
        for i in range(args.seconds + 1):
            t = time.time() - start
            if i == args.pause_at:
                urllib.request.urlopen(urllib.request.Request(url + "/connectors/sink/pause", method="PUT"))
                paused = True
            if i == args.pause_at + args.pause_for and paused:
                urllib.request.urlopen(urllib.request.Request(url + "/connectors/sink/resume", method="PUT"))
            text = urllib.request.urlopen(url + "/metrics").read().decode()
            scrapes.append((t, parse(text)))
            time.sleep(max(0.0, start + i + 1 - time.time()))
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    ts, src_rate, sink_rate, lag, p50_log, p99_log, p50_sink, p99_sink, p99_prod, rss = ([] for _ in range(10))
    window = 5
    for i in range(1, len(scrapes)):
        t, now = scrapes[i]
        t0, before = scrapes[i - 1]
        wt, wbefore = scrapes[max(0, i - window)]
        dt = t - t0
        ts.append(t)
        d = lambda c: (value(now, "tributary_task_records_durable_total", connector=c) or 0) - (
            value(before, "tributary_task_records_durable_total", connector=c) or 0)
        src_rate.append(d("gen") / dt)
        sink_rate.append(d("sink") / dt)
        lag.append((value(now, "tributary_source_lag_milliseconds", connector="sink") or 0) / 1000)
        h = "tributary_end_to_end_latency_seconds"
        p50_log.append(quantile(0.5, buckets(wbefore, h, connector="gen"), buckets(now, h, connector="gen")))
        p99_log.append(quantile(0.99, buckets(wbefore, h, connector="gen"), buckets(now, h, connector="gen")))
        p50_sink.append(quantile(0.5, buckets(wbefore, h, connector="sink"), buckets(now, h, connector="sink")))
        p99_sink.append(quantile(0.99, buckets(wbefore, h, connector="sink"), buckets(now, h, connector="sink")))
        p = "tributary_produce_latency_seconds"
        p99_prod.append(quantile(0.99, buckets(wbefore, p, connector="gen"), buckets(now, p, connector="gen")))
        rss.append((value(now, "process_resident_memory_bytes") or 0) / 2**20)

    fig, axes = plt.subplots(4, 1, figsize=(10, 12), sharex=True)
    shade = lambda ax: ax.axvspan(args.pause_at, args.pause_at + args.pause_for, color="orange", alpha=0.15,
                                  label="sink paused")
    ax = axes[0]
    ax.plot(ts, src_rate, label="gen: durable in log")
    ax.plot(ts, sink_rate, label="sink: durable in file")
    shade(ax)
    ax.set_ylabel("records / s")
    ax.set_title(f"Tributary /metrics, scraped every second (datagen at {args.rate}/s -> FileStreamSink)")
    ax.legend(loc="upper right")
    ax = axes[1]
    nz = lambda xs: [x if x is not None else float("nan") for x in xs]
    ax.plot(ts, nz(p50_log), label="p50 source commit -> log")
    ax.plot(ts, nz(p99_log), label="p99 source commit -> log")
    ax.plot(ts, nz(p50_sink), label="p50 source commit -> sink")
    ax.plot(ts, nz(p99_sink), label="p99 source commit -> sink")
    shade(ax)
    ax.set_yscale("log")
    ax.set_ylabel("end-to-end latency (s)\n5 s window")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.plot(ts, lag, label="sink lag: last consumed record behind its source commit", color="tab:red")
    ax.plot(ts, nz(p99_prod), label="p99 produce latency (log ack)", color="tab:purple")
    shade(ax)
    ax.set_ylabel("seconds")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[3]
    ax.plot(ts, rss, label="RSS", color="tab:green")
    shade(ax)
    ax.set_ylabel("MiB")
    ax.set_xlabel("seconds since start")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    summary = {
        "seconds": round(ts[-1], 1),
        "records_gen": value(scrapes[-1][1], "tributary_task_records_durable_total", connector="gen"),
        "records_sink": value(scrapes[-1][1], "tributary_task_records_durable_total", connector="sink"),
        "max_sink_lag_s": max(lag),
        "max_rss_mib": round(max(rss), 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
