#!/usr/bin/python3
"""Renders scripts/memleak-compare.sh's raw outputs as the tables of
docs/leaks.md ("Beside memleak"): memleak-table.py DIR."""
import datetime
import json
import re
import statistics
import sys

# Each leak: the allocation site's function (the frame after the
# allocator), a function its stack passes through, and what is held.
LEAKS = {
    "files": {"site": ("__alloc_file", "alloc_empty_file"), "path": "do_sys_openat2", "held": 900,
              "what": "900 files held (struct file, openat)"},
    "pipes": {"site": ("alloc_inode",), "path": "create_pipe_files", "held": 300,
              "what": "300 of 4,000 pipes held (inodes; the rest freed by RCU in softirq)"},
}
ALLOCATORS = ("kmem_cache_alloc", "__kmalloc", "kmalloc")
REPORT = re.compile(r"^\[(\d\d):(\d\d):(\d\d)\] Top \d+ stacks")
BLOCK = re.compile(r"^\s+(\d+) bytes in (\d+) allocations from stack")


def func(frame):
    """The function of a frame "func+0xoff [module]" or "0xaddr\tfunc+0xoff [kernel]"."""
    return frame.split("\t")[-1].split("+")[0].strip()


def memleak_reports(path):
    """[(seconds of day, [(allocations, [frames])])] from memleak's output."""
    reports, stack = [], None
    for line in open(path, errors="replace"):
        m = REPORT.match(line)
        if m:
            h, mi, s = map(int, m.groups())
            reports.append((h * 3600 + mi * 60 + s, []))
            continue
        m = BLOCK.match(line)
        if m and reports:
            stack = (int(m.group(2)), [])
            reports[-1][1].append(stack)
        elif line.startswith("\t\t") and stack is not None:
            stack[1].append(line.strip())
    return reports


def memleak_site(frames):
    """The frame after the allocator in a memleak stack."""
    for i, f in enumerate(frames[:-1]):
        if func(f).startswith(ALLOCATORS):
            return func(frames[i + 1])
    return ""


def held_span(d, leak, window):
    """When the holder started and exited (seconds since the epoch)."""
    return tuple(float(open("%s/%s-%s.%s" % (d, leak, window, e)).read()) for e in ("start", "end"))


# A report counts if it was made while the holder held its leak: from 2 s
# after it started to 1 s before it exited.
HELD_FROM, HELD_TO = 2, 1


def memleak_count(d, leak, window):
    """The most memleak reported outstanding at the leak's stacks while
    the holder held it."""
    start, end = held_span(d, leak, window)
    day = lambda t: t % 86400
    spec = LEAKS[leak]
    counts = [sum(n for n, frames in stacks
                  if memleak_site(frames) in spec["site"] and any(func(f) == spec["path"] for f in frames))
              for t, stacks in memleak_reports("%s/memleak-%s.txt" % (d, leak))
              if day(start) + HELD_FROM <= t <= day(end) - HELD_TO]
    return max(counts) if counts else None


def slabbench_frames(d, leak, window):
    frames = [json.loads(line) for line in open("%s/%s-%s.json" % (d, leak, window)) if line.startswith("{")]
    return [f for f in frames if not f.get("final")], next((f for f in frames if f.get("final")), None)


def frame_time(f):
    """A frame's "time", RFC 3339 with up to 9 fractional digits, in seconds."""
    t = re.sub(r"(\.\d{6})\d*", r"\1", f["time"]).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(t).timestamp()


def slabbench_count(d, leak, window):
    """The most slabbench showed outstanding at the leak's site (relay) or
    stacks (--stacks) while the holder held it."""
    live, _ = slabbench_frames(d, leak, window)
    start, end = held_span(d, leak, window)
    spec = LEAKS[leak]

    def count(f):
        if "stacks" in f:
            return sum(s["outstanding"] for s in f["stacks"]
                       if func(s["call_site"]) in spec["site"] and any(func(x) == spec["path"] for x in s["frames"]))
        return sum(s["outstanding"] for s in f["sites"] if func(s["call_site"]) in spec["site"])
    counts = [count(f) for f in live if start + HELD_FROM <= frame_time(f) <= end - HELD_TO]
    return max(counts) if counts else None


def slabbench_loss(d, leak, window):
    _, final = slabbench_frames(d, leak, window)
    if final is None or "capture" not in final:
        return "no final table (%s)" % open("%s/%s-%s.err" % (d, leak, window)).read().strip()[:120]
    c, a = final["capture"], final["accounting"]
    s = "lost %d (dropped %d, missed %d); the kernel skipped its probe %d times; outstanding over by up to %d, under by up to %d" % (
        c["lost"], c["dropped"], c["missed"], c.get("probe_misses", 0),
        a["outstanding_overstated_by_up_to"], a["outstanding_understated_by_up_to"])
    if c.get("foreign_programs"):
        s += "; names memleak's programs, which hid %d hits from its truth counter, so its loss is a lower bound" % c.get("foreign_hidden", 0)
    if not final.get("verified"):
        s += "; check FAILED: " + final.get("verify_error", "")[:100]
    return s


def cell(n, held):
    if n is None:
        return "no report", ""
    return str(n), ("%+d" % (n - held)) if n != held else "0"


def main(d):
    kernel = open(d + "/kernel").read().strip()
    print("Kernel %s (the VM, TCG). Both tools watch the whole system; outstanding at the leaking stack "
          "(memleak: where the allocator's caller is the site and the stack passes the path; slabbench relay: at the call site; "
          "slabbench --stacks: the same rule as memleak), the most each tool reported from 2 s after the holder started to 1 s before it exited. "
          "Off by: against what the holder holds; both also count what other processes hold there.\n" % kernel)
    print("| leak | tool (window) | outstanding | off by | what it says about lost events |")
    print("|---|---|---:|---:|---|")
    for leak, spec in LEAKS.items():
        for window, name in (("relay", "relay, by call site"), ("ringbuf", "ringbuf rawtp --stacks")):
            n, off = cell(memleak_count(d, leak, window), spec["held"])
            print("| %s | memleak (beside slabbench %s) | %s | %s | nothing: it keeps no count |" % (spec["what"], window, n, off))
            n, off = cell(slabbench_count(d, leak, window), spec["held"])
            print("| %s | slabbench top, %s | %s | %s | %s |" % (
                spec["what"], name, n, off, slabbench_loss(d, leak, window)))
    print("\n20,000 pipes made and closed by one Python process, seconds (median of 3) and slowdown against no tool:\n")
    print("| tool | seconds | slowdown |")
    print("|---|---:|---:|")
    med = {}
    for tool in ("none", "memleak", "relay", "ringbuf"):
        med[tool] = statistics.median(float(x) for x in open("%s/slow-%s.txt" % (d, tool)))
    names = {"none": "none", "memleak": "memleak-bpfcc", "relay": "slabbench top --path relay",
             "ringbuf": "slabbench top --path ringbuf --attach rawtp --stacks"}
    for tool, s in med.items():
        print("| %s | %.2f | %.2fx |" % (names[tool], s, s / med["none"]))


if __name__ == "__main__":
    main(sys.argv[1])
