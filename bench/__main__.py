"""amqpbroker vs RabbitMQ, side by side. See bench/README.md.

    python -m bench                        # ours alone, every scenario, 3 repetitions
    RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/ python -m bench
    python -m bench --scenario a --scenario g --quick --reps 1

Our broker is started fresh (new process, new data directory) for every run. With
RABBITMQ_URL set, each scenario runs on both brokers in alternation (ours, theirs, ours,
theirs...). Prints median [min..max] per broker and the ratio ours/theirs; writes JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from typing import Any

from bench.brokers import Unavailable, find_rabbitmq_pid, our_broker, rabbitmq_target
from bench.scenarios import METRICS, SCENARIOS, Sizes


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1 or value == 0:
        return f"{value:.2f}"
    return f"{value:.3f}"


def summarize(values: list[float | None]) -> dict[str, float] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "min": min(present), "max": max(present),
            "n": len(present)}


def _cell(summary: dict[str, float] | None) -> str:
    if summary is None:
        return "n/a"
    if summary["n"] == 1:
        return _fmt(summary["median"])
    return f"{_fmt(summary['median'])} [{_fmt(summary['min'])}..{_fmt(summary['max'])}]"


def run_once(scenario: str, target_name: str, rabbit_url: str | None, rabbit_pid: int | None,
             sizes: Sizes) -> dict[str, Any]:
    _title, fn = SCENARIOS[scenario]
    started = time.monotonic()
    try:
        if target_name == "ours":
            with our_broker() as target:
                metrics = fn(target, sizes)
        else:
            assert rabbit_url is not None
            metrics = fn(rabbitmq_target(rabbit_url, rabbit_pid), sizes)
    except Unavailable as exc:
        return {"skipped": str(exc), "seconds": time.monotonic() - started}
    except Exception as exc:
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}",
                "seconds": time.monotonic() - started}
    metrics["seconds"] = time.monotonic() - started
    return metrics


def table(results: dict[str, Any], targets: list[str]) -> str:
    rows = [["scen", "metric", "ours median [min..max]"]]
    if "rabbitmq" in targets:
        rows[0] += ["rabbitmq median [min..max]", "ours/rabbitmq"]
    for scenario, data in results["scenarios"].items():
        for i, (key, label, better) in enumerate(METRICS[scenario]):
            summary = data["summary"].get(key, {})
            row = [scenario if i == 0 else "", label, _cell(summary.get("ours"))]
            if "rabbitmq" in targets:
                ratio = summary.get("ratio")
                row += [_cell(summary.get("rabbitmq")),
                        "n/a" if ratio is None else f"{ratio:.2f}x ({better} is better)"]
            rows.append(row)
        for kind in ("error", "skipped"):
            for t in targets:
                for i, r in enumerate(data["runs"].get(t, [])):
                    if kind in r:
                        rows.append(["", kind.upper(), f"{t} run {i + 1}: {r[kind]}"])
    widths = [max(len(r[c]) for r in rows if len(r) > c and r[1] not in ("ERROR", "SKIPPED"))
              for c in range(len(rows[0]))]
    lines = []
    for row in rows:
        if row[1] in ("ERROR", "SKIPPED"):
            lines.append(f"{row[0]:<{widths[0]}}  {row[1].lower()}: {row[2]}")
        else:
            lines.append("  ".join(cell.ljust(widths[c]) if c < 2 else cell.rjust(widths[c])
                                   for c, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def update_summary(data: dict[str, Any], scenario: str, targets: list[str]) -> None:
    summary: dict[str, Any] = {}
    for key, _label, _better in METRICS[scenario]:
        entry: dict[str, Any] = {}
        for target in targets:
            entry[target] = summarize([r.get(key) for r in data["runs"].get(target, [])
                                       if "error" not in r and "skipped" not in r])
        ours, theirs = entry.get("ours"), entry.get("rabbitmq")
        if ours and theirs and theirs["median"]:
            entry["ratio"] = ours["median"] / theirs["median"]
        summary[key] = entry
    data["summary"] = summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only these (repeatable); default: all")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per broker")
    parser.add_argument("--quick", action="store_true", help="small message counts")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the message counts of a-d and g")
    parser.add_argument("--backlog", type=int, help="messages of scenario g")
    parser.add_argument("--connections", type=int, help="connections of scenario f")
    parser.add_argument("--rabbitmq-url", default=os.environ.get("RABBITMQ_URL"),
                        help="compare with this RabbitMQ (default: $RABBITMQ_URL)")
    parser.add_argument("--rabbitmq-pid", type=int,
                        help="pid of RabbitMQ's beam.smp (default: found with pgrep)")
    parser.add_argument("--json", default="bench/results.json")
    args = parser.parse_args()

    sizes = Sizes.quick() if args.quick else Sizes()
    if args.scale != 1.0:
        sizes = sizes.scaled(args.scale)
    if args.backlog:
        sizes.g = args.backlog
    if args.connections:
        sizes.f = args.connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 65536):  # scenario f holds hundreds of sockets in one process
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    targets = ["ours"]
    rabbit_pid = None
    if args.rabbitmq_url:
        targets.append("rabbitmq")
        rabbit_pid = args.rabbitmq_pid or find_rabbitmq_pid(args.rabbitmq_url)
        print(f"RabbitMQ at {args.rabbitmq_url}, beam.smp pid "
              f"{rabbit_pid if rabbit_pid else 'not found: its CPU and memory are n/a'}")
    scenarios = args.scenario or sorted(SCENARIOS)
    results: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "args": {"reps": args.reps, "quick": args.quick, "scale": args.scale,
                 "sizes": vars(sizes), "rabbitmq_url": args.rabbitmq_url},
        "scenarios": {},
    }
    for scenario in scenarios:
        title = SCENARIOS[scenario][0]
        print(f"\n== {scenario}: {title}", flush=True)
        data: dict[str, Any] = {"title": title, "runs": {t: [] for t in targets}}
        results["scenarios"][scenario] = data
        for rep in range(args.reps):
            for target in targets:
                run = run_once(scenario, target, args.rabbitmq_url, rabbit_pid, sizes)
                data["runs"][target].append(run)
                if "error" in run or "skipped" in run:
                    shown = run.get("error") or "skipped: " + run["skipped"]
                else:
                    shown = "  ".join(f"{label}={_fmt(run.get(key))}"
                                      for key, label, _ in METRICS[scenario][:3])
                print(f"  {target:<8} rep {rep + 1}: {shown}  ({run['seconds']:.0f} s)",
                      flush=True)
        update_summary(data, scenario, targets)
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    print()
    print(table(results, targets))
    print(f"\n(results in {args.json})")
    failed = any("error" in r for d in results["scenarios"].values()
                 for runs in d["runs"].values() for r in runs)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
