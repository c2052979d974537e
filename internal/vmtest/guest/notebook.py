"""notebook.py: a Jupyter kernel running one cell (scenarios/cpython.sh).

Run by a real CPython (Debian's python3.11, copied onto the guest's disk):

    python3.11 -I -u notebook.py GO_FIFO MARK_FILE MIB_PER_S

After a line on GO_FIFO, the cell grows a list of 1 MiB bytes objects at
MIB_PER_S until SIGINT raises KeyboardInterrupt in it, as a user's cell
does. The except clause drops the list (the memory goes back to the
kernel: each object is its own mmap) and the kernel stays, idle between
cells, with its variables. MARK_FILE gets "SIGINT MS", "SIGTERM MS",
"grown MIB MS" and, on SIGUSR1, "state cells=N interrupts=N data=N
rss_kb=N MS": the proof, read after the episode, that the process lived
and kept its state. MS is CLOCK_BOOTTIME in ms, the guest's /proc/uptime.

    python3.11 -I notebook.py --imports

prints the stdlib files the kernel loads, which the test copies onto the
guest's disk (internal/vmtest, pressureDisk).
"""

import os
import signal
import sys
import time

MIB = 1 << 20


def now_ms():
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * 1000)


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main():
    if sys.argv[1:] == ["--imports"]:
        # What a failure's report needs too, so the guest can print one.
        import linecache, traceback  # noqa: F401,E401
        for m in sorted(sys.modules.values(), key=lambda m: m.__name__):
            f = getattr(m, "__file__", None)
            if f:
                print(f)
        return
    go, mark, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])

    def note(s):
        with open(mark, "a") as f:
            f.write("%s %d\n" % (s, now_ms()))

    # A script's background job starts with SIGINT ignored, and CPython
    # keeps an ignored SIGINT ignored; ipykernel installs the handler
    # itself, as here.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_term(sig, frame):
        note(signal.Signals(sig).name)
        os._exit(128 + sig)

    signal.signal(signal.SIGTERM, on_term)

    data = []
    cells = interrupts = 0

    def on_usr1(sig, frame):
        note("state cells=%d interrupts=%d data=%d rss_kb=%d" % (cells, interrupts, len(data), rss_kb()))

    signal.signal(signal.SIGUSR1, on_usr1)

    with open(go) as f:
        f.readline()
    cells += 1
    try:
        start = time.monotonic()
        while True:
            # Every page written: bytes * n fills them.
            data.append(bytes([len(data) & 255]) * MIB)
            if len(data) % 64 == 0:
                note("grown %d" % len(data))
            delay = start + len(data) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    except KeyboardInterrupt:
        interrupts += 1
        note("SIGINT")
        data.clear()
        note("interrupted rss_kb=%d" % rss_kb())
    # Idle between cells, as a kernel waits for the next one.
    while True:
        try:
            time.sleep(3600)
        except KeyboardInterrupt:
            interrupts += 1
            note("SIGINT")


if __name__ == "__main__":
    main()
