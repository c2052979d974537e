#!/usr/bin/env python3
"""Draws the Grafana dashboard's panels from a Prometheus server.

A static rendering, not Grafana: every panel's queries run as Grafana would
run them (query_range, $__rate_interval and $node replaced), and the result
is drawn with matplotlib in the panel's place, title, unit and style.
"""
import argparse, json, math, urllib.parse, urllib.request
from datetime import datetime, timezone

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.dates as mdates
import matplotlib.ticker

ap = argparse.ArgumentParser()
ap.add_argument("--prometheus", required=True)
ap.add_argument("--dashboard", required=True)
ap.add_argument("--start", type=int, required=True)
ap.add_argument("--end", type=int, required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--step", type=int, default=15)
args = ap.parse_args()

dash = json.load(open(args.dashboard))


def query(expr):
    q = urllib.parse.urlencode({"query": expr, "start": args.start, "end": args.end, "step": args.step})
    with urllib.request.urlopen(f"{args.prometheus}/api/v1/query_range?{q}") as r:
        body = json.load(r)
    if body["status"] != "success":
        raise SystemExit(f"{expr}: {body}")
    return body["data"]["result"]


def legend(fmt, labels):
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    while "{{" in out:  # labels the series lacks
        i, j = out.index("{{"), out.index("}}") + 2
        out = out[:i] + "-" + out[j:]
    return out.strip()


def fmt_unit(unit, v):
    if unit == "s":
        if v == 0:
            return "0"
        return f"{v*1e6:.0f} µs" if v < 1e-3 else f"{v*1e3:.1f} ms" if v < 1 else f"{v:.2f} s"
    return f"{v:g}"


plt.style.use("dark_background")
cols, rows = 24, max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
fig = plt.figure(figsize=(18, rows * 0.42), facecolor="#111217")
fig.suptitle(f"{dash['title']}: {len(dash['panels'])} panels, real series from one agent "
             f"({datetime.fromtimestamp(args.start, timezone.utc):%Y-%m-%d %H:%M}–"
             f"{datetime.fromtimestamp(args.end, timezone.utc):%H:%M} UTC)",
             x=0.01, ha="left", color="#d8d9da", fontsize=13)
colors = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a"]
pad = 0.012
for p in dash["panels"]:
    g = p["gridPos"]
    # Room on the left for the y tick labels.
    left, width = g["x"] / cols + pad + 0.035, g["w"] / cols - 2 * pad - 0.035
    top = 1 - (g["y"] / rows) - 0.05
    height = g["h"] / rows - 0.06
    ax = fig.add_axes([left, top - height, width * 0.72, height], facecolor="#181b1f")
    ax.set_title(p["title"], loc="left", color="#d8d9da", fontsize=11)
    unit = p["fieldConfig"]["defaults"].get("unit", "short")
    bars = p["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars"
    series = []
    for t in p["targets"]:
        expr = t["expr"].replace("$__rate_interval", "1m").replace("$node", ".*")
        for r in query(expr):
            pts = [(datetime.fromtimestamp(float(ts), timezone.utc), float(v)) for ts, v in r["values"] if not math.isnan(float(v))]
            if pts:
                series.append((legend(t.get("legendFormat", ""), r["metric"]), pts))
    bottom = {}
    for i, (name, pts) in enumerate(series):
        xs, ys = [x for x, _ in pts], [y for _, y in pts]
        c = colors[i % len(colors)]
        if bars:
            base = [bottom.get(x, 0) for x in xs]
            ax.bar(xs, ys, bottom=base, width=args.step / 86400 * 0.9, color=c, label=name)
            for x, y in zip(xs, ys):
                bottom[x] = bottom.get(x, 0) + y
        else:
            ax.plot(xs, ys, color=c, label=name, linewidth=1.6)
            ax.fill_between(xs, ys, color=c, alpha=0.1)
    if not series:
        ax.text(0.5, 0.5, "No data", transform=ax.transAxes, ha="center", color="#8e8e8e")
    ax.set_ylim(bottom=0)
    ax.grid(color="#2c3235", linewidth=0.6)
    ax.tick_params(colors="#8e8e8e", labelsize=8)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _, unit=unit: fmt_unit(unit, v)))
    ax.set_xlim(datetime.fromtimestamp(args.start, timezone.utc), datetime.fromtimestamp(args.end, timezone.utc))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    for s in ax.spines.values():
        s.set_color("#2c3235")
    if series:
        handles, labels = ax.get_legend_handles_labels()
        rowsl = [f"{n[:34]}  max {fmt_unit(unit, max(y for _, y in pts))}" for n, pts in series]
        ax.legend(handles, rowsl, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7.5, frameon=False, labelcolor="#d8d9da")
fig.savefig(args.out, dpi=80, facecolor=fig.get_facecolor())
print("wrote", args.out)
