"""The ssh backend's cluster file: the sample parses; every kind of mistake is one error naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends import ssh_config
from harness.backends.ssh_config import ClusterConfigError, load, parse

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[cluster]
user = "pi"
key = "~/.ssh/picluster"
sudo = true
switch_off = "tplink-plug 192.168.1.50 off"
switch_on = ["tplink-plug", "192.168.1.50", "on"]

[nodes.n1]
host = "192.168.1.11"
power_off = ["uhubctl", "-l", "1-1", "-p", "{node}", "-a", "off"]
power_on = ["uhubctl", "-l", "1-1", "-p", "{node}", "-a", "on"]

[nodes.n2]
host = "192.168.1.12"
user = "admin"
ssh_port = 2222
port = 7100
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cluster.toml"
    p.write_text(text)
    return p


def test_good_file_merges_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, GOOD))
    n1, n2 = cfg.nodes["n1"], cfg.nodes["n2"]
    assert (n1.user, n1.ssh_port, n1.port, n1.sudo, n1.python) == ("pi", 22, 7000, True, "python3")
    assert (n2.user, n2.ssh_port, n2.port, n2.key) == ("admin", 2222, 7100, "~/.ssh/picluster")
    assert n2.power_off is None
    assert cfg.switch_off == ("tplink-plug", "192.168.1.50", "off")
    assert ssh_config.expand(n1.power_off or (), n1) == ["uhubctl", "-l", "1-1", "-p", "n1", "-a", "off"]
    assert cfg.accept_new_host_keys is False
    assert [h.node for h in cfg.select(["n1", "n2"])] == ["n1", "n2"]


def test_sample_in_docs_parses() -> None:
    cfg = load(ROOT / "docs" / "cluster.example.toml")
    assert list(cfg.nodes) == ["n1", "n2", "n3", "n4"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[nodes.n1\nhost = 1", "not valid TOML"),
        ("[cluster]\nuser = 'pi'\n", "nodes: missing"),
        ("[nodes.n1]\nuser = 'pi'\n", "nodes.n1.host: missing"),
        ("[nodes.n1]\nhost = 'a'\n", "nodes.n1.user: missing"),
        ("[cluster]\nuser='pi'\n[nodes.n1]\nhost = 'a'\nhots = 'b'\n", "nodes.n1.hots: unknown key"),
        ("[cluster]\nuser='pi'\npasword = 'x'\n[nodes.n1]\nhost = 'a'\n", "cluster.pasword: unknown key"),
        ("wat = 1\n[nodes.n1]\nhost='a'\nuser='u'\n", "unknown top-level key 'wat'"),
        ("[cluster]\nuser='pi'\n[nodes.n1]\nhost = 'a'\nport = 'x'\n", "nodes.n1.port: must be int"),
        ("[cluster]\nuser='pi'\n[nodes.n1]\nhost = 'a'\nport = 70000\n", "nodes.n1.port: must be in 1..65535"),
        ("[cluster]\nuser='pi'\n[nodes.n1]\nhost = 'a'\nsudo = 'yes'\n", "nodes.n1.sudo: must be bool"),
        ("[cluster]\nuser='pi'\n[nodes.n1]\nhost = 'a'\nssh_port = true\n", "nodes.n1.ssh_port: must be int"),
        ("[cluster]\nuser='pi'\n[nodes.n1]\nhost = 'a'\npower_off = []\n", "nodes.n1.power_off: must be a non-empty"),
        ("[cluster]\nuser='pi'\n[nodes.n1]\nhost = 'a'\npower_on = [1]\n", "nodes.n1.power_on: must be a non-empty"),
        ("[cluster]\nuser='pi'\nswitch_off = 'x \"y'\n[nodes.n1]\nhost = 'a'\n", "cluster.switch_off: cannot split"),
        ("[cluster]\nuser='pi'\n[nodes.pi1]\nhost = 'a'\n", "nodes.pi1: node ids are n1, n2"),
        ("[cluster]\nuser='pi'\n[nodes.n2]\nhost = 'a'\n", "ids must be n1..n1 without gaps"),
        ("[cluster]\nuser='pi'\n[nodes.n1]\nhost='a'\n[nodes.n2]\nhost='a'\n", "share the same host and port"),
        ("[cluster]\nuser='pi'\naccept_new_host_keys = 1\n[nodes.n1]\nhost='a'\n",
         "cluster.accept_new_host_keys: must be bool"),
    ],
)
def test_broken_files_name_the_field(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ClusterConfigError) as e:
        load(write(tmp_path, text))
    assert names in str(e.value)
    assert str(tmp_path / "cluster.toml") in str(e.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_a_run_wanting_more_nodes_than_described_is_refused() -> None:
    cfg = parse({"cluster": {"user": "pi"}, "nodes": {"n1": {"host": "a"}, "n2": {"host": "b"}}}, "c.toml")
    with pytest.raises(ClusterConfigError, match=r"wants node n3 .*\(use --nodes 2\)"):
        cfg.select(["n1", "n2", "n3"])
