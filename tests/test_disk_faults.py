"""Disk faults: EIO, ENOSPC and slow fsyncs on the sim and the real disk, lost unsynced writes on a real
node's power loss (the unsynced journal), and Raft fail-stopping rather than acknowledging what it could
not persist. Each fault is shown to take effect."""

from __future__ import annotations

import asyncio
import errno
import io
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness.backends.local import free_ports
from harness.session import check, execute, prepare
from systems.echo import start_node as echo_start
from systems.runtime.api import NodeConfig, RemoteError
from systems.runtime.disk_faults import DiskFaults
from systems.runtime.real import ClientEndpoint, RealRuntime
from systems.runtime.real_disk import RealDisk
from systems.runtime.real_log import JsonLog
from systems.runtime.real_unsynced import COMPACT_BYTES, JOURNAL_NAME
from systems.runtime.sim_disk import DiskStore, DiskView


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20.0))


# -- the fault itself ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [None, {"fault": "melt"}, {"fault": "eio", "ops": "read"},
                                 {"fault": "slow-fsync", "delay_s": 0}, {"fault": "slow-fsync", "delay_s": "1"}])
def test_bad_disk_faults_are_refused(bad: Any) -> None:
    f = DiskFaults()
    with pytest.raises(ValueError):
        f.set(bad)
    assert f.kind is None


def real_disk(tmp_path: Path) -> RealDisk:
    return RealDisk(tmp_path / "d")


def sim_disk(tmp_path: Path) -> DiskView:
    return DiskView(DiskStore(), lambda: True)


@pytest.mark.parametrize("make", [real_disk, sim_disk], ids=["real", "sim"])
def test_eio_and_enospc_fail_before_touching_anything(tmp_path: Path, make: Any) -> None:
    async def main() -> None:
        disk = make(tmp_path)
        faults = disk.faults if isinstance(disk, RealDisk) else disk._store.faults
        disk.append("log", b"abc")
        await disk.sync("log")
        faults.set({"fault": "eio", "ops": "write"})
        for op in (lambda: disk.append("log", b"x"), lambda: disk.write("log", b"x"),
                   lambda: disk.truncate("log", 0), lambda: disk.delete("log")):
            with pytest.raises(OSError) as e:
                op()
            assert e.value.errno == errno.EIO
        await disk.sync("log")  # only writes fail
        assert disk.read("log") == b"abc", "reads still work, and nothing was changed"
        faults.set({"fault": "eio", "ops": "sync"})
        disk.append("log", b"d")
        with pytest.raises(OSError) as e:
            await disk.sync("log")
        assert e.value.errno == errno.EIO
        faults.set({"fault": "enospc"})
        with pytest.raises(OSError) as e:
            disk.append("log", b"e")
        assert e.value.errno == errno.ENOSPC
        await disk.sync("log")  # a full disk still flushes what it holds
        assert faults.injected == 6
        faults.clear()
        disk.append("log", b"f")
        await disk.sync("log")
        assert disk.read("log") == b"abcdf"

    run(main())


def test_a_full_disk_still_deletes(tmp_path: Path) -> None:
    async def main() -> None:
        disk = RealDisk(tmp_path / "d")
        disk.write("old", b"x")
        await disk.sync("old")
        disk.faults.set({"fault": "enospc"})
        disk.delete("old")
        assert disk.read("old") is None

    run(main())


def test_slow_fsync_delays_every_sync_on_sim(tmp_path: Path) -> None:
    from systems.runtime.sim import SimWorld

    world = SimWorld(1, ["n1"])
    store = world.stores["n1"]

    async def body() -> None:
        view = DiskView(store, lambda: True, sync_s=0.001)
        store.faults.set({"fault": "slow-fsync", "delay_s": 0.5})
        view.append("log", b"x")
        start = world.loop.time()
        await view.sync("log")
        assert world.loop.time() - start == pytest.approx(0.501)
        assert store.faults.delayed == 1 and store.durable["log"] == b"x"

    world.run(body())


def test_slow_fsync_is_counted_on_the_real_disk(tmp_path: Path) -> None:
    async def main() -> None:
        disk = RealDisk(tmp_path / "d")
        disk.faults.set({"fault": "slow-fsync", "delay_s": 0.01})
        disk.append("log", b"x")
        await disk.sync("log")
        assert disk.faults.delayed == 1 and disk.fsyncs >= 1

    run(main())


# -- lost unsynced writes on a real node's power loss -------------------------------------------------
def test_power_loss_reverts_every_unsynced_change_and_a_crash_keeps_them(tmp_path: Path) -> None:
    async def main() -> None:
        root = tmp_path / "d"
        disk = RealDisk(root)
        disk.append("log", b"synced")
        await disk.sync("log")
        disk.write("meta", b"v1")
        await disk.sync("meta")
        disk.write("doomed", b"d")
        await disk.sync("doomed")
        disk.write("cut", b"0123456789")
        await disk.sync("cut")
        # unsynced: an append, a rewrite, a new nested file, a delete, a truncate
        disk.append("log", b"+lost")
        disk.write("meta", b"v2")
        disk.append("segs/new", b"n")
        disk.delete("doomed")
        disk.truncate("cut", 3)
        disk.close()
        after_crash = RealDisk(root)  # a process crash: the page cache keeps everything
        assert not after_crash.recovered.power_loss
        assert after_crash.read("log") == b"synced+lost" and after_crash.read("meta") == b"v2"
        after_crash.append("log", b"+again")
        after_crash.arm_power_loss()  # what the crashed process wrote is cached, not durable: lost too
        after_crash.close()
        after_power = RealDisk(root)
        assert after_power.recovered.power_loss
        assert after_power.read("log") == b"synced" and after_power.read("meta") == b"v1"
        assert after_power.read("segs/new") is None, "a file never synced is gone"
        assert after_power.read("doomed") == b"d", "a delete no sync made durable is undone"
        assert after_power.read("cut") == b"0123456789"
        assert after_power.list() == ["cut", "doomed", "log", "meta"]
        after_power.close()
        again = RealDisk(root)
        assert not again.recovered.power_loss and again.read("log") == b"synced"

    run(main())


def test_synced_changes_and_durable_deletes_survive_power_loss(tmp_path: Path) -> None:
    async def main() -> None:
        root = tmp_path / "d"
        disk = RealDisk(root)
        disk.append("log", b"a")
        await disk.sync("log")
        disk.append("log", b"b")
        disk.write("gone", b"g")
        await disk.sync("gone")
        disk.delete("gone")
        await disk.sync("log")  # syncs "b" and, through the directory, the delete
        disk.append("log", b"c")
        disk.arm_power_loss()
        disk.close()
        back = RealDisk(root)
        assert back.read("log") == b"ab" and back.read("gone") is None

    run(main())


def test_the_journal_survives_a_torn_tail_and_compaction(tmp_path: Path) -> None:
    async def main() -> None:
        root = tmp_path / "d"
        disk = RealDisk(root)
        disk.write("keep", b"k0")
        await disk.sync("keep")
        disk.write("keep", b"k1")  # unsynced, recorded early
        for _ in range(COMPACT_BYTES // 20000 + 5):  # enough records to compact the journal
            disk.write("churn", bytes(20000))
            await disk.sync("churn")
        assert (root / JOURNAL_NAME).stat().st_size < COMPACT_BYTES, "the journal was compacted"
        disk.arm_power_loss()
        disk.close()
        with open(root / JOURNAL_NAME, "ab") as f:
            f.write(b"\x00\x00\x01")  # a torn record
        back = RealDisk(root)
        assert back.recovered.power_loss and back.read("keep") == b"k0"

    run(main())


def test_a_real_node_takes_disk_faults_and_arms_power_loss_on_its_control_channel(tmp_path: Path) -> None:
    async def main() -> None:
        (port,) = free_ports(1)
        addrs = {"n1": ("127.0.0.1", port)}
        log = io.StringIO()
        rt = RealRuntime("n1", addrs, tmp_path / "n1", log=JsonLog("n1", log))
        await echo_start(rt, NodeConfig("echo"))
        await rt.start()
        rt.mark_ready()
        client = ClientEndpoint(addrs, log=JsonLog("client", io.StringIO()))
        try:
            reply = await client.control("n1", "disk-fault", {"fault": "slow-fsync", "delay_s": 0.01})
            assert reply["fault"] == "slow-fsync"
            rt.disk.append("x", b"0")
            await rt.disk.sync("x")
            stats = await client.control("n1", "stats")
            assert stats["disk_fault"]["delayed"] == 1
            with pytest.raises(RemoteError) as e:
                await client.control("n1", "disk-fault", {"fault": "melt"})
            assert e.value.code == "bad-control"
            assert (await client.control("n1", "disk-fault", {"fault": None}))["fault"] is None
            rt.disk.append("x", b"unsynced")
            assert (await client.control("n1", "arm-power-loss"))["armed"] is True
            reply = await client.control("n1", "disk-fault", {"fault": "eio", "ops": "both"})
            assert reply["fault"] == "eio"
            with pytest.raises(OSError):
                rt.disk.append("x", b"1")
            assert rt.failed is not None and "Input/output error" in rt.failed, "an injected EIO fail-stops"
            assert rt.disk.faults.injected == 1
        finally:
            await client.close()
            await rt.close()
        back = RealRuntime("n1", addrs, tmp_path / "n1", log=JsonLog("n1", log))
        try:
            assert back.disk.read("x") == b"0" and back.disk.recovered.reverted == ["x"]
            assert back.disk.faults.kind is None, "a restarted node does not carry the fault"
            back.disk.append("y", b"fine")
            assert back.failed is None
            assert '"disk-power-loss"' in log.getvalue() and '"node-failed"' in log.getvalue()
        finally:
            await back.close()

    run(main())


# -- systems under disk faults ------------------------------------------------------------------------
def raft_spec(backend: str, nemesis: tuple[str, ...], seed: int, bugs: tuple[str, ...] = (),
              time_limit: float = 20.0) -> TestSpec:
    return TestSpec(system="raft", workload="register", nemesis=nemesis, backend=backend, node_count=5,
                    concurrency=5, time_limit_s=time_limit, nemesis_interval_s=5.0, quiet_s=3.0, seed=seed, bugs=bugs)


def run_spec(tmp_path: Path, spec: TestSpec) -> tuple[dict[str, Any], Path]:
    s = prepare(spec, tmp_path / f"{spec.backend}-{spec.seed}-{'-'.join(spec.nemesis)}")
    execute(s)
    return check(s.path), s.path


def node_events(run_dir: Path, event: str) -> list[str]:
    return [line for p in sorted((run_dir / "nodes").glob("*.log"))
            for line in p.read_text().splitlines() if f'"event": "{event}"' in line]


@pytest.mark.sim
def test_raft_fail_stops_on_disk_errors_and_stays_valid_on_sim(tmp_path: Path) -> None:
    results, path = run_spec(tmp_path, raft_spec("sim", ("disk-eio", "disk-full", "slow-fsync"), 1,
                                                 time_limit=30.0))
    assert results["valid"] is True, {k: v.get("valid") for k, v in results["checkers"].items()}
    assert [e for e in node_events(path, "node-failed") if "injected disk fault" in e], \
        "an EIO or ENOSPC fail-stopped a node"
    assert any('"delayed": 0' not in e and '"fault": null' in e for e in node_events(path, "disk-fault")), \
        "a slow fsync delayed some syncs"


@pytest.mark.real
@pytest.mark.slow
def test_no_fsync_is_caught_by_power_loss_on_local_and_healthy_raft_survives_it(tmp_path: Path) -> None:
    caught, path = run_spec(tmp_path / "bug", raft_spec("local", ("power",), 1, ("no-fsync",)))
    assert caught["valid"] is False, {k: v.get("valid") for k, v in caught["checkers"].items()}
    assert node_events(path, "disk-power-loss"), "the restarted nodes reverted what they had not synced"
    healthy, path = run_spec(tmp_path / "healthy", raft_spec("local", ("power",), 1))
    assert healthy["valid"] is True, {k: v.get("valid") for k, v in healthy["checkers"].items()}
    assert node_events(path, "disk-power-loss")


@pytest.mark.real
@pytest.mark.slow
def test_raft_fail_stops_on_disk_errors_on_local(tmp_path: Path) -> None:
    results, path = run_spec(tmp_path, raft_spec("local", ("disk-eio", "disk-full"), 1, time_limit=25.0))
    assert results["valid"] is True, {k: v.get("valid") for k, v in results["checkers"].items()}
    assert [e for e in node_events(path, "node-failed") if "injected disk fault" in e]
