"""A TCP proxy between an agent and the agent hub that can lose the hub's answers at a
point the test decides — the way a hub killed after it acted, before its answer reached
the agent, looks from the agent's side. Nothing in Stella's code knows of it: the agent
is given the proxy's address as its hub (the hub's certificate names 127.0.0.1, so TLS
and mTLS go through it untouched).

`withhold(until)`: from then on, before each chunk the hub sends back is forwarded,
`until()` is asked (e.g. "the task's status says its credentials were spent"); from the
first chunk for which it is true, nothing more goes back on that connection. `cut()`
closes those connections both ways and lets new ones through again."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

from tests.e2e.loopback_proxy import LoopbackProxy


class HubProxy(LoopbackProxy):
    def __init__(self, hub_port: int) -> None:
        self.hub_port = hub_port
        self.held: list[int] = []  # sizes of the chunks withheld
        self._until: Callable[[], bool] | None = None
        self._stalled: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        super().__init__()
        self.url = f"https://127.0.0.1:{self.port}"

    def withhold(self, until: Callable[[], bool]) -> None:
        self._until = until

    def cut(self) -> None:
        """Close the stalled connections (the agent sees its request cut off) and forward
        everything again."""
        with self._lock:
            self._until = None
            stalled, self._stalled = self._stalled, []
        for pair in stalled:
            for s in pair:
                _reset(s)

    def close(self) -> None:
        super().close()
        self.cut()

    def _connected(self, agent: socket.socket) -> None:
        try:
            hub = socket.create_connection(("127.0.0.1", self.hub_port), timeout=5)
        except OSError:  # the hub is down: refused, as without the proxy
            _reset(agent)
            return
        hub.settimeout(None)
        threading.Thread(target=self._forward, args=(agent, hub), daemon=True).start()
        threading.Thread(target=self._answer, args=(hub, agent), daemon=True).start()

    def _forward(self, agent: socket.socket, hub: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := agent.recv(65536):
                hub.sendall(data)
        with contextlib.suppress(OSError):
            hub.shutdown(socket.SHUT_WR)

    def _answer(self, hub: socket.socket, agent: socket.socket) -> None:
        stalled = False
        with contextlib.suppress(OSError):
            while data := hub.recv(65536):
                until = self._until
                if not stalled and until is not None and until():
                    stalled = True
                    with self._lock:
                        self._stalled.append((agent, hub))
                if stalled:
                    self.held.append(len(data))
                    continue
                agent.sendall(data)
        if not stalled:
            with contextlib.suppress(OSError):
                agent.shutdown(socket.SHUT_WR)


def _reset(s: socket.socket) -> None:
    """Close with a reset (what the agent sees of a peer that is gone)."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
