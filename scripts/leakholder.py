#!/usr/bin/python3
"""A known kernel-memory leak for scripts/memleak-compare.sh.

leakholder.py files N HOLD [TIMES]: opens /dev/null N times and holds the
files for HOLD seconds (N struct file from the openat path outstanding).
leakholder.py pipes N KEEP HOLD [TIMES]: creates N pipes, keeps KEEP of
them open and closes the rest at once, then waits HOLD seconds: the closed
pipes' inodes and files are freed by RCU callbacks, in softirq, so only
KEEP inodes stay outstanding. With TIMES, the seconds the opens (and
closes) took are appended to that file.
"""
import os
import sys
import time


def main(argv):
    mode = argv[1]
    start = time.monotonic()
    kept = []
    if mode == "files":
        n, hold = int(argv[2]), float(argv[3])
        times = argv[4] if len(argv) > 4 else None
        kept = [os.open("/dev/null", os.O_RDONLY) for _ in range(n)]
    elif mode == "pipes":
        n, keep, hold = int(argv[2]), int(argv[3]), float(argv[4])
        times = argv[5] if len(argv) > 5 else None
        for i in range(n):
            r, w = os.pipe()
            if i < keep:
                kept += [r, w]
            else:
                os.close(r)
                os.close(w)
    else:
        sys.exit("usage: leakholder.py files N HOLD [TIMES] | pipes N KEEP HOLD [TIMES]")
    if times:
        with open(times, "a") as f:
            f.write("%.6f\n" % (time.monotonic() - start))
    if hold > 0:
        print("leakholder: holding %d fds; %d open in all" % (len(kept), len(os.listdir("/proc/self/fd"))),
              file=sys.stderr, flush=True)
    time.sleep(hold)


if __name__ == "__main__":
    main(sys.argv)
