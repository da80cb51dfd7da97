"""Record every frame that crosses the netns backend's bridge into a pcap file, with scapy.

Rules this module keeps:

- scapy does the capture and the file: an `L2ListenSocket` on the bridge,
  from the harness's side (the root namespace), in promiscuous mode (so
  frames forwarded between two nodes' ports are seen, not only those to
  the harness; scapy turns it off again on close), with the kernel's own
  timestamps, written by scapy's `RawPcapWriter` as classic pcap
  (LINKTYPE_ETHERNET, nanosecond timestamps), flushed frame by frame. Frames
  are kept whole up to `snaplen` bytes. No BPF filter (so no tcpdump needed).
  The socket's receive buffer is 16 MiB, so a busy moment does not cost
  the capture frames (the decoder steps over any it missed, and counts them).
- Frames are written as captured, never dissected on the way in (dissecting
  costs scapy ~100 µs a frame); harness/lamport_capture.py decodes them
  afterwards (TCP streams reassembled, our frames decoded).
- A bridge going down and up (the `switch` fault) does not end the capture.
- One reader thread; `stop()` ends it within a fraction of a second and
  closes the file. The capture never raises into the run: an error is
  remembered in `error` and capturing stops.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
import time
from pathlib import Path

LINKTYPE_ETHERNET = 1
POLL_S = 0.2
RECEIVE_BUFFER_BYTES = 16 << 20
"""The kernel's buffer for frames not read yet: a frame that does not fit is lost to the capture (not to the run)."""


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    """(timestamp, frame) pairs of a capture (for tests and tools), read with scapy."""
    from scapy.utils import RawPcapReader

    out = []
    with RawPcapReader(str(path)) as reader:
        per_second = 1e9 if getattr(reader, "nano", False) else 1e6
        for data, meta in reader:
            out.append((meta.sec + meta.usec / per_second, bytes(data)))
    return out


class BridgeCapture:
    def __init__(self, ifname: str, path: Path, snaplen: int = 262144) -> None:
        self.ifname = ifname
        self.path = path
        self.snaplen = snaplen
        self.frames = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: object | None = None

    def start(self) -> None:
        from scapy.arch.linux import L2ListenSocket
        from scapy.utils import RawPcapWriter

        sock = L2ListenSocket(iface=self.ifname, promisc=True)
        with contextlib.suppress(OSError):  # room for bursts while the writer is busy (root may exceed rmem_max)
            sock.ins.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), RECEIVE_BUFFER_BYTES)
        try:
            writer = RawPcapWriter(str(self.path), linktype=LINKTYPE_ETHERNET, sync=True, nano=True,
                                   snaplen=self.snaplen)
            writer.write_header(None)  # a capture that saw nothing is still a valid, empty pcap
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._run, args=(sock, writer), name=f"capture-{self.ifname}",
                                        daemon=True)
        self._thread.start()

    def _run(self, sock: object, writer: object) -> None:
        from scapy.arch.linux import L2ListenSocket
        from scapy.utils import RawPcapWriter

        assert isinstance(sock, L2ListenSocket) and isinstance(writer, RawPcapWriter)
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([sock], [], [], POLL_S)
                if not ready:
                    continue
                try:
                    _, frame, ts = sock.recv_raw(self.snaplen)
                except OSError as e:
                    if e.errno == errno.ENETDOWN:  # the switch was turned off: keep listening
                        continue
                    raise
                if frame is None:
                    continue
                ns = int(ts * 1e9) if ts is not None else time.time_ns()
                writer.write_packet(frame[: self.snaplen], sec=ns // 1_000_000_000, usec=ns % 1_000_000_000,
                                    wirelen=len(frame))
                self.frames += 1
        except (OSError, ValueError) as e:
            self.error = str(e)
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.close()  # type: ignore[attr-defined]
