#!/usr/bin/env python3
"""Shares of a profile by kind of work: `perf report` of a file from scripts/profile-serve.sh,
symbols grouped into JSON parsing, the allocator, memmove, AES-GCM (TLS), base64, the
injector's own core (decision, values, containers, patch, admission, view), other user code,
and the kernel. Usage: scripts/perf-shares.py target/profile/serve.<pid>.perf"""
import re
import subprocess
import sys

GROUPS = [
    ("json", r"serde_json|from_utf8"),
    ("allocator", r"malloc|free|realloc|_int_|unlink_chunk|consolidate"),
    ("memmove", r"memmove|memcpy|memset"),
    ("aes-gcm (TLS)", r"aes_gcm|gcm"),
    ("base64", r"base64"),
    ("injector core", r"proxy_injector::(patch|values|decision|containers|admission|view)"),
]

out = subprocess.run(
    ["perf", "report", "-i", sys.argv[1], "--no-children", "--stdio", "--sort", "symbol", "-g", "none"],
    capture_output=True, text=True, check=True,
).stdout
shares = {}
for line in out.splitlines():
    m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
    group = "kernel" if kind == "k" else next((g for g, rx in GROUPS if re.search(rx, sym)), "other user code")
    shares[group] = shares.get(group, 0.0) + pct
user = sum(v for g, v in shares.items() if g != "kernel")
for g, v in sorted(shares.items(), key=lambda x: -x[1]):
    of_user = "" if g == "kernel" else f", {100 * v / user:.1f}% of user-space time"
    print(f"{g:18s} {v:5.1f}% of samples{of_user}")
