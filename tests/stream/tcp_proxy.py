"""A loopback TCP proxy that can be cut: a network partition between one client and the broker, without root.

``cut()`` resets every open connection and refuses new ones (accepted and closed at once) until ``restore()``;
the client sees its broker connection drop and reconnects fail, as across a partition. ``black_hole()`` is the
quieter partition (a firewall dropping packets): nothing is forwarded and nothing is closed; open connections
stay open and unanswered, new ones are accepted and held. ``restore()`` then delivers what was held, as TCP
retransmission would after a short partition. Threads, not asyncio: the test drives it from sync code while
replicas run as processes.
"""

from __future__ import annotations

import socket
import struct
import threading


class TcpProxy:
    """Forwards connections to 127.0.0.1:``port`` to ``target`` (set before the first client connects)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self.target: tuple[str, int] | None = None
        self.refused = 0  # connections refused while cut
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._flowing = threading.Event()  # cleared while black-holed
        self._flowing.set()
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy-accept", daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones."""
        with self._lock:
            self._cut = True
            doomed = list(self._open)
        for sock in doomed:  # their pump threads wake up and close them
            _reset(sock, close=False)

    def black_hole(self) -> None:
        """Stop forwarding in both directions without closing anything; new connections are accepted and held."""
        self._flowing.clear()

    @property
    def black_holed(self) -> bool:
        """Whether ``black_hole()`` is in effect."""
        return not self._flowing.is_set()

    def restore(self) -> None:
        """Forward again: new connections after a cut, the held bytes and connections after a black hole."""
        with self._lock:
            self._cut = False
        self._flowing.set()

    def close(self) -> None:
        """Stop accepting and drop every connection."""
        self._closed = True
        self.cut()
        self._flowing.set()  # release the threads a black hole holds (they find their sockets reset)
        self._acceptor.join(2)
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                refuse = self._cut or self.target is None
                self.refused += refuse
            if refuse:
                _reset(client)
                continue
            with self._lock:
                self._open.add(client)
            threading.Thread(target=self._connect, args=(client,), name="tcp-proxy-connect", daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        """Connect an accepted client to the target (once forwarding, if black-holed) and start its two pumps."""
        self._flowing.wait()
        assert self.target is not None
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            with self._lock:
                self._open.discard(client)
            _reset(client)
            return
        upstream.settimeout(None)
        client.settimeout(None)
        with self._lock:
            self._open.add(upstream)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst), name="tcp-proxy-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()  # black-holed: held here, like packets awaiting retransmission
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._flowing.wait()  # a close is a packet too: the other side sees it only after the black hole
            with self._lock:
                self._open.difference_update((src, dst))
            _reset(src)
            _reset(dst)


def _reset(sock: socket.socket, close: bool = True) -> None:
    """Shut down (waking a thread blocked in recv on it) and close with an RST (linger 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    if close:
        sock.close()
