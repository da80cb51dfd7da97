"""Record every frame that crosses the netns backend's bridge into a pcap file (open it in Wireshark).

Rules this module keeps:

- Standard library only: an AF_PACKET raw socket bound to the bridge, with
  the bridge put in promiscuous mode through the socket's own membership
  (PACKET_MR_PROMISC: dropped automatically when the socket closes), so
  frames forwarded between two nodes' ports are seen, not just those to
  the harness.
- The file is classic pcap (LINKTYPE_ETHERNET, microsecond wall-clock
  timestamps), flushed as it goes; frames are cut at `snaplen` bytes.
- A bridge going down and up (the `switch` fault) does not end the capture.
- One reader thread; `stop()` ends it within a fraction of a second and
  closes the file. The capture never raises into the run: an error is
  remembered in `error` and capturing stops.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
import time
from pathlib import Path

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
LINKTYPE_ETHERNET = 1


def pcap_header(snaplen: int) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET)


def pcap_record(ts: float, frame: bytes, orig_len: int) -> bytes:
    sec = int(ts)
    usec = int((ts - sec) * 1_000_000)
    return struct.pack("<IIII", sec, usec, len(frame), orig_len) + frame


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    """(timestamp, frame) pairs of a file this module wrote (for tests and tools)."""
    data = path.read_bytes()
    out = []
    pos = 24
    while pos + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, pos)
        pos += 16
        out.append((sec + usec / 1e6, data[pos:pos + incl]))
        pos += incl
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
        self._sock: socket.socket | None = None

    def start(self) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.bind((self.ifname, 0))
            ifindex = socket.if_nametoindex(self.ifname)
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                            struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""))
            sock.settimeout(0.2)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.ifname}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._sock is not None
        try:
            with self.path.open("wb") as f:
                f.write(pcap_header(self.snaplen))
                while not self._stop.is_set():
                    try:
                        frame = self._sock.recv(self.snaplen)
                    except TimeoutError:
                        continue
                    except OSError as e:
                        if e.errno == errno.ENETDOWN:  # the switch was turned off: keep listening
                            continue
                        raise
                    f.write(pcap_record(time.time(), frame[: self.snaplen], len(frame)))
                    f.flush()
                    self.frames += 1
        except OSError as e:
            self.error = str(e)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
