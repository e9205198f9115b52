"""Waiting on real signals: poll a probe until it holds or a deadline passes (no fixed sleeps)."""
import time


class Timeout(AssertionError):
    pass


def wait_for(probe, timeout, what, interval=0.05):
    """Calls `probe()` until it returns a truthy value, which is returned. Exceptions from the probe
    count as "not yet"; the last value or exception is named in the Timeout raised at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except Exception as error:  # noqa: BLE001 - the probe's failure is the "not yet" answer
            last = error
        if time.monotonic() >= deadline:
            raise Timeout(f"{what}: not within {timeout:g} s (last: {last!r})")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)
