"""systemd's notify protocol (sd_notify(3)): READY, STATUS, WATCHDOG and STOPPING.

Hand-written on purpose: the protocol is one datagram to $NOTIFY_SOCKET, and the maintained
binding (systemd-python) needs libsystemd headers to build. Without $NOTIFY_SOCKET (not
started by systemd) every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
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
