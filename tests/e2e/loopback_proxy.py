"""The listening half of the e2e tests' TCP proxies on loopback (test_ha_e2e.py's ReadyProxy
stands in for a Service, hub_proxy.py's HubProxy loses the hub's answers): a port on
127.0.0.1 whose every connection goes to the subclass's ``_connected`` until ``close()``."""

from __future__ import annotations

import socket
import threading

from devenv.proc import free_port


class LoopbackProxy:
    def __init__(self) -> None:
        """Listens at once: a subclass sets what ``_connected`` reads before calling this."""
        self.port = free_port()
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()

    def _connected(self, conn: socket.socket) -> None:
        """Take the connection: connect it upstream and start moving bytes, or close it."""
        raise NotImplementedError

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._connected(conn)
