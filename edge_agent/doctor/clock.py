"""Clock synchronisation, as the kernel sees it (adjtimex: what NTP daemons set)."""

from __future__ import annotations

import ctypes
import ctypes.util
import time

from edge_agent.doctor.base import DoctorContext, Finding, Status

CHECK = "clock"
TIME_ERROR = 5
"""adjtimex(2): the clock is not synchronised."""
EARLIEST_PLAUSIBLE = 1_735_689_600.0
"""2025-01-01: a board without an RTC boots in 1970 (or at its image's build date)."""
FIX = (
    "sudo apt install systemd-timesyncd (or chrony) && sudo timedatectl set-ntp true; "
    "the device needs UDP 123 to an NTP server"
)


def kernel_clock_state() -> int | None:
    """adjtimex(2)'s return value with nothing changed; None where it cannot be asked."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    # struct timex is ~208 bytes; zeroed, modes = 0 means read only.
    buf = ctypes.create_string_buffer(512)
    try:
        state = int(libc.adjtimex(buf))
    except AttributeError:
        return None
    return None if state < 0 else state


def judge(state: int | None, now: float) -> Finding:
    if now < EARLIEST_PLAUSIBLE:
        return Finding(
            CHECK,
            Status.FAIL,
            f"the clock says {time.strftime('%Y-%m-%d', time.gmtime(now))}: never set",
            FIX,
        )
    if state is None:
        return Finding(CHECK, Status.WARN, "cannot ask the kernel whether the clock is synced")
    if state == TIME_ERROR:
        return Finding(
            CHECK,
            Status.WARN,
            "the clock is not synchronised (timestamps and TLS certificates may be off)",
            FIX,
        )
    return Finding(CHECK, Status.OK, "the clock is synchronised")


def check(context: DoctorContext) -> list[Finding]:
    return [judge(kernel_clock_state(), time.time())]
