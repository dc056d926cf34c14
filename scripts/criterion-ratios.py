#!/usr/bin/env python3
"""Prints the criterion medians of `make bench` as ratios to the baseline of the same run."""
import json, pathlib, sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
def median(group, fn):
    p = root / group / fn / "new" / "estimates.json"
    return json.loads(p.read_text())["median"]["point_estimate"] / 1000.0 if p.exists() else None

print("| pod | parse-floor µs | injector µs | naive µs | injector / floor | naive / floor |")
print("|-----|----------------|-------------|----------|------------------|---------------|")
for size in ["small", "10KB", "100KB"]:
    g = f"review-{size}"
    f, i, n = median(g, "parse-floor"), median(g, "injector"), median(g, "naive")
    if None in (f, i, n):
        continue
    print(f"| {size} | {f:.1f} | {i:.1f} | {n:.1f} | {i/f:.2f}x | {n/f:.2f}x |")
for release in ["edge-25.4.4", "edge-26.8.3"]:
    m = median("release-10KB", release)
    if m is not None:
        print(f"review of the 10 KB pod as {release} injects it: {m:.1f} µs (median)")
p = root / "decide+patch-10KB" / "new" / "estimates.json"
if p.exists():
    print(f"decide+patch, 10 KB pod: {json.loads(p.read_text())['median']['point_estimate']/1000:.2f} µs (median)")
for fn, unit in [("compile-200-policies", 1000.0), ("proxy-paths-1000-pods", 1000000.0)]:
    p = root / "netpol" / fn / "new" / "estimates.json"
    if p.exists():
        m = json.loads(p.read_text())["median"]["point_estimate"] / unit
        print(f"netpol {fn}: {m:.2f} {'µs' if unit == 1000.0 else 'ms'} (median)")
