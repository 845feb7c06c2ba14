"""systemd's notify protocol (sd_notify(3)): READY, STATUS, WATCHDOG and STOPPING.

Hand-written on purpose: the protocol is one datagram to $NOTIFY_SOCKET, and the maintained
binding (systemd-python) needs libsystemd headers to build. Without $NOTIFY_SOCKET (not
started by systemd) every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

# While the first sync advances, systemd's start timeout is pushed this far ahead.
SYNC_START_EXTENSION_USEC = 60_000_000


class SystemdNotifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address = None
        if address:
            # An abstract socket is given with a leading '@'.
            self._address = "\0" + address[1:] if address.startswith("@") else address

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str) -> None:
        if self._address is None:
            return
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        # systemd may have gone away; notification must never break the daemon.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            sock.sendto(message.encode(), self._address)

    def watchdog_interval(self) -> float | None:
        """Half the WatchdogSec systemd asked for, in seconds, or None when not watched."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 2_000_000


class SystemdHeartbeat:
    """READY=1 after the first good poll, STATUS lines, and WATCHDOG=1 from the main loop."""

    def __init__(self, notifier: SystemdNotifier, interval: float) -> None:
        self._notifier = notifier
        self._interval = interval
        self._ready_sent = False
        self._status = ""
        self._synced_at = 0.0

    def syncing(self, count: int) -> None:
        """During the first sync: the watchdog, progress, and more time to start (a large
        helpdesk takes minutes; TimeoutStartSec counts from each extension)."""
        now = time.monotonic()
        if self._synced_at and now - self._synced_at < self._interval:
            return
        self._synced_at = now
        self._notifier.notify(
            watchdog="1",
            status=f"initial sync: {count} open tickets read",
            extend_timeout_usec=str(SYNC_START_EXTENSION_USEC),
        )

    def __call__(self, ready: bool, status: str) -> None:
        """After every cycle of the main loop: its liveness, readiness and status line."""
        fields = {"watchdog": "1"}
        if ready and not self._ready_sent:
            fields["ready"] = "1"
            self._ready_sent = True
        if status != self._status:
            fields["status"] = status
            self._status = status
        self._notifier.notify(**fields)
