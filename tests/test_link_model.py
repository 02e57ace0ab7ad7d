"""The link model itself (tests/fixtures/linkmodel.py): rate, delay, sharing, drops.

Against a plain TCP sink/echo server on 127.0.0.1, so what is measured is the model alone.
Tolerances are wide (a loaded machine only ever makes things slower): each figure must be
near what the model claims, never faster than the link could carry.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from tests.fixtures.linkmodel import LinkModel


class Sink:
    """Echoes b"!" for every b"?" received; counts everything else."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.received = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with contextlib.suppress(OSError), conn:
            while data := conn.recv(65536):
                with self.lock:
                    self.received += len(data)
                if data.endswith(b"?"):
                    conn.sendall(b"!")

    def wait_received(self, nbytes, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.received >= nbytes:
                    return time.monotonic()
            time.sleep(0.002)
        raise AssertionError(f"only {self.received} of {nbytes} bytes arrived")


@pytest.fixture
def sink():
    server = Sink()
    yield server
    server.listener.close()


def ping(sock) -> float:
    started = time.monotonic()
    sock.sendall(b"?")
    assert sock.recv(1) == b"!"
    return time.monotonic() - started


def test_round_trip_is_the_configured_delay(sink):
    link = LinkModel(sink.port, rtt_ms=80)
    try:
        with socket.create_connection((link.host, link.port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rtts = sorted(ping(sock) for _ in range(5))
        assert 0.080 <= rtts[2] < 0.080 + 0.060, rtts
    finally:
        link.close()


def test_uplink_carries_its_rate_and_no_more(sink):
    link = LinkModel(sink.port, up_mbit=8, rtt_ms=80)
    payload = b"x" * 1_000_000  # 1 s at 8 Mbit/s
    try:
        with socket.create_connection((link.host, link.port)) as sock:
            started = time.monotonic()
            sock.sendall(payload)
            arrived = sink.wait_received(len(payload)) - started
        floor = link.seconds_for(len(payload)) + link.rtt / 2
        assert floor * 0.97 <= arrived < floor * 1.25, (arrived, floor)
        assert link.up.sent == len(payload)
    finally:
        link.close()


def test_connections_share_one_uplink_and_delay_is_pipelined(sink):
    """Four connections at once take as long as their bytes together (shared), and the
    delay is paid once, not per piece (pipelined)."""
    link = LinkModel(sink.port, up_mbit=8, rtt_ms=200)
    payload = b"y" * 250_000
    try:
        socks = [socket.create_connection((link.host, link.port)) for _ in range(4)]
        started = time.monotonic()
        threads = [threading.Thread(target=s.sendall, args=(payload,)) for s in socks]
        for t in threads:
            t.start()
        arrived = sink.wait_received(4 * len(payload)) - started
        floor = link.seconds_for(4 * len(payload)) + link.rtt / 2
        assert floor * 0.97 <= arrived < floor * 1.25, (arrived, floor)
        for t in threads:
            t.join()
        for s in socks:
            s.close()
    finally:
        link.close()


def test_a_dropped_link_cuts_refuses_and_comes_back(sink):
    link = LinkModel(sink.port, rtt_ms=20)
    try:
        sock = socket.create_connection((link.host, link.port))
        assert ping(sock) >= 0.02
        link.go_down()
        with pytest.raises(OSError):
            sock.sendall(b"?")
            sock.recv(1) or (_ for _ in ()).throw(ConnectionResetError())
        sock.close()
        with pytest.raises(OSError):
            with socket.create_connection((link.host, link.port)) as refused:
                refused.sendall(b"?")
                refused.recv(1) or (_ for _ in ()).throw(ConnectionResetError())
        link.come_up()
        with socket.create_connection((link.host, link.port)) as again:
            assert ping(again) >= 0.02
        assert link.drops == 1 and link.refused >= 1
    finally:
        link.close()


def test_loss_costs_time_and_bytes_but_delivers_everything(sink):
    link = LinkModel(sink.port, up_mbit=8, rtt_ms=40, loss=0.05)
    payload = b"z" * 400_000
    try:
        with socket.create_connection((link.host, link.port)) as sock:
            sock.sendall(payload)
            sink.wait_received(len(payload))
        assert link.up.lost > 0 and link.up.sent == len(payload) + link.up.lost
    finally:
        link.close()


def test_a_stalled_link_holds_everything_until_it_resumes(sink):
    link = LinkModel(sink.port, rtt_ms=20)
    try:
        with socket.create_connection((link.host, link.port)) as sock:
            assert ping(sock) >= 0.02
            link.stall()
            sock.sendall(b"?")
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(1)  # nothing moves while stalled
            link.resume()
            sock.settimeout(10)
            assert sock.recv(1) == b"!"  # the connection survived the stall
    finally:
        link.close()
