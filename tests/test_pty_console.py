"""Power and switch controllers that speak an interactive console, played with pexpect against a fake one.

The fake console is this file run as a program (`python tests/test_pty_console.py STATE [--tcp]`): a
PDU-and-switch CLI in the style of an APC PDU's telnet prompt. It asks for a user name and a password,
then takes `olOff N` / `olOn N` (an outlet), `port N down|up` (a switch port), `switch off|on`, `quit`,
answering `E000: Success` or `E102: Parameter Error`, and records every outlet, port and switch state in
the STATE file (JSON) as it changes, so a test sees what the commands did. Over a pseudo-terminal it reads
stdin (the `spawn` kind of console); with --tcp it listens on 127.0.0.1 and prints its port (the
`connect` kind). The harness's side is harness/backends/console.py, reached through the cluster file's
[consoles.NAME] and the ssh backend's hardware (harness/backends/ssh.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

USER, PASSWORD, PROMPT = "apc", "s3cret", "apc>"
FAKE = Path(__file__).resolve()


# -- the fake console ----------------------------------------------------------------------------------


def console_session(read_line: Any, write: Any, state_path: Path) -> None:
    """One login and its commands, over whatever `read_line` / `write` talk to."""
    state = json.loads(state_path.read_text()) if state_path.exists() else {"outlets": {}, "ports": {}, "switch": "on"}

    def save() -> None:
        state_path.write_text(json.dumps(state, sort_keys=True))

    write("\r\nAmerican Power Conversion (fake)\r\n\r\nUser Name : ")
    user = read_line()
    write("Password  : ")
    password = read_line()
    if user != USER or password != PASSWORD:
        write("\r\nAccess Denied\r\n")
        return
    write(f"\r\n{PROMPT} ")
    while True:
        line = read_line()
        if line is None or line == "quit":
            write("\r\nBye.\r\n")
            return
        words = line.split()
        ok = True
        if len(words) == 2 and words[0] in ("olOff", "olOn") and words[1].isdigit():
            state["outlets"][words[1]] = "off" if words[0] == "olOff" else "on"
        elif len(words) == 3 and words[0] == "port" and words[2] in ("down", "up"):
            state["ports"][words[1]] = words[2]
        elif len(words) == 2 and words[0] == "switch" and words[1] in ("off", "on"):
            state["switch"] = words[1]
        else:
            ok = False
        if ok:
            save()
        write(("\r\nE000: Success\r\n" if ok else "\r\nE102: Parameter Error\r\n") + f"\r\n{PROMPT} ")


def fake_main(argv: list[str]) -> None:
    state_path = Path(argv[0])
    if "--tcp" not in argv:
        import termios

        attrs = termios.tcgetattr(0)  # a real console does not echo the password
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(0, termios.TCSANOW, attrs)

        def read_line() -> str | None:
            line = sys.stdin.readline()
            return line.strip() if line else None

        def write(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        console_session(read_line, write, state_path)
        return
    server = socket.create_server(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)
    server.settimeout(60)
    while True:  # one session at a time, as a terminal server port does
        try:
            conn, _ = server.accept()
        except TimeoutError:
            return
        with conn, conn.makefile("rwb", buffering=0) as f:

            def read_tcp() -> str | None:  # a line ends at CR or LF, as telnet clients send either
                line = bytearray()
                while (c := f.read(1)) not in (b"", b"\r", b"\n"):
                    line += c
                if not c and not line:
                    return None
                return line.decode().strip() if line or c else None

            def write_tcp(text: str) -> None:
                with contextlib.suppress(OSError):
                    f.write(text.encode())

            console_session(read_tcp, write_tcp, state_path)


# -- tests -----------------------------------------------------------------------------------------------


@pytest.fixture
def tcp_console(tmp_path: Path) -> Any:
    """The fake console listening on 127.0.0.1 (started by the test, stopped after it)."""
    state = tmp_path / "console.json"
    proc = subprocess.Popen([sys.executable, str(FAKE), str(state), "--tcp"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield port, state
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def cluster_toml(console: str, **node_extra: str) -> str:
    extra = "\n".join(f"{k} = {v}" for k, v in node_extra.items())
    return f"""
[cluster]
user = "pi"
switch_off = {{console = "pdu", steps = [{{send = "switch off"}}, {{expect = "E000: Success"}}]}}
switch_on = {{console = "pdu", steps = [{{send = "switch on"}}, {{expect = "E000: Success"}}]}}
{console}
[nodes.n1]
host = "192.0.2.11"
power_off = {{console = "pdu", steps = [{{send = "olOff 1"}}, {{expect = "E000: Success"}}, {{expect = "apc>"}}]}}
power_on = {{console = "pdu", steps = [{{send = "olOn 1"}}, {{expect = "E000: Success"}}]}}
link_down = {{console = "pdu", steps = [{{send = "port 1 down"}}, {{expect = "E000: Success"}}]}}
link_up = {{console = "pdu", steps = [{{send = "port 1 up"}}, {{expect = "E000: Success"}}]}}
{extra}
[nodes.n2]
host = "192.0.2.12"
power_off = {{console = "pdu", steps = [{{send = "olOff 7"}}, {{expect = "E000: Success"}}]}}
power_on = {{console = "pdu", steps = [{{send = "olOn 7"}}, {{expect = "E000: Success"}}]}}
link_down = {{console = "pdu", steps = [{{send = "port {{node}} down"}}, {{expect = "E000"}}]}}
link_up = {{console = "pdu", steps = [{{send = "port {{node}} up"}}, {{expect = "E000"}}]}}
"""


LOGIN = (f'login = [{{expect = "User Name :", send = "{USER}"}}, {{expect = "Password  :", send = "{PASSWORD}"}},'
         f' {{expect = "{PROMPT}"}}]\nlogout = [{{send = "quit"}}]\nfail = "E[1-9][0-9][0-9]:|Access Denied"')


def hardware(tmp_path: Path, toml: str) -> Any:
    from harness.backends import ssh_config
    from harness.backends.ssh import SshHardware
    from harness.backends.ssh_processes import SshHost
    from harness.backends.ssh_remote import Remote

    path = tmp_path / "cluster.toml"
    path.write_text(toml)
    config = ssh_config.load(path)
    hosts = {n: SshHost(h, Remote(h, known_hosts=str(tmp_path / "known_hosts")), h.host)
             for n, h in config.nodes.items()}
    return config, SshHardware(config, hosts)


def test_power_switch_and_cables_scripted_on_a_tcp_console(tmp_path: Path, tcp_console: Any) -> None:
    from base.cluster import Capability

    port, state = tcp_console
    _config, hw = hardware(tmp_path, cluster_toml(f'[consoles.pdu]\nconnect = "127.0.0.1:{port}"\n{LOGIN}'))
    assert {Capability.PLUG, Capability.SWITCH, Capability.CABLE} <= hw.capabilities
    hw.power("n1", on=False)
    assert json.loads(state.read_text())["outlets"] == {"1": "off"}
    hw.switch(on=False)
    assert json.loads(state.read_text())["switch"] == "off"
    hw.switch(on=True)
    hw.cable("n2", plugged=False)  # {node} filled in
    assert json.loads(state.read_text()) == {"outlets": {"1": "off"}, "ports": {"n2": "down"}, "switch": "on"}
    hw.cable("n2", plugged=True)
    assert json.loads(state.read_text())["ports"] == {"n2": "up"}


def test_a_console_spawned_in_a_pseudo_terminal(tmp_path: Path) -> None:
    state = tmp_path / "console.json"
    spawn = json.dumps([sys.executable, str(FAKE), str(state)])
    _, hw = hardware(tmp_path, cluster_toml(f"[consoles.pdu]\nspawn = {spawn}\n{LOGIN}"))
    hw.cable("n1", plugged=False)
    hw.power("n2", on=False)
    assert json.loads(state.read_text()) == {"outlets": {"7": "off"}, "ports": {"1": "down"}, "switch": "on"}


def test_a_wrong_password_is_one_clear_error(tmp_path: Path, tcp_console: Any) -> None:
    port, state = tcp_console
    login = LOGIN.replace(PASSWORD, "wrong")
    _, hw = hardware(tmp_path, cluster_toml(f'[consoles.pdu]\nconnect = "127.0.0.1:{port}"\ntimeout_s = 5\n{login}'))
    with pytest.raises(RuntimeError) as e:
        hw.switch(on=False)
    message = str(e.value)
    assert "\n" not in message
    assert "switch_off: console pdu, login step 3" in message and "Access Denied" in message
    assert not state.exists()  # nothing was switched


def test_a_refused_command_fails_the_fault_and_says_what_the_console_said(tmp_path: Path, tcp_console: Any) -> None:
    port, state = tcp_console
    toml = cluster_toml(f'[consoles.pdu]\nconnect = "127.0.0.1:{port}"\n{LOGIN}').replace('"olOff 7"', '"olOff seven"')
    _, hw = hardware(tmp_path, toml)
    with pytest.raises(RuntimeError, match=r"n2 power_off: console pdu, n2 power_off step 5: the console said "
                                           r"'E102:'"):
        hw.power("n2", on=False)
    assert not state.exists()


def test_a_console_that_never_prompts_times_out_with_what_it_printed(tmp_path: Path) -> None:
    from harness.backends.console import ConsoleError, Step, play

    _, hw = hardware(tmp_path, cluster_toml(
        '[consoles.pdu]\nspawn = ["sh", "-c", "echo Welcome to the switch; sleep 30"]\ntimeout_s = 0.5\n' + LOGIN))
    script = hw.config.switch_off
    with pytest.raises(ConsoleError, match=r"login step 1: waited 0.5 s for 'User Name :'; the console printed: "
                                           r"Welcome to the switch"):
        play(script, "switch_off")
    assert Step(expect="x", send="y").words() == "expect 'x', then send 'y'"


@pytest.mark.parametrize(("console", "node_line", "error"), [
    ('[consoles.pdu]\nspawn = "telnet pdu"\nconnect = "pdu:23"', "", "consoles.pdu: give either spawn"),
    ('[consoles.pdu]\nconnect = "pdu"', "", 'consoles.pdu.connect: must be "host:port"'),
    ('[consoles.pdu]\nconnect = "pdu:23"\nlogin = [{expect = "("}]', "", "consoles.pdu.login[0].expect: not a regular"),
    ('[consoles.pdu]\nconnect = "pdu:23"\nlogin = [{wait = 1}]', "", "consoles.pdu.login[0]: a step is a table"),
    ('[consoles.pdu]\nconnect = "pdu:23"\nbaud = 9600', "", "consoles.pdu.baud: unknown key"),
    ('[consoles.other]\nconnect = "pdu:23"', "", "nodes.n1.power_off.console: no [consoles.pdu] in the file (other)"),
])
def test_console_mistakes_in_the_cluster_file_name_the_field(tmp_path: Path, console: str, node_line: str,
                                                             error: str) -> None:
    from harness.backends import ssh_config

    path = tmp_path / "cluster.toml"
    path.write_text(cluster_toml(console))
    with pytest.raises(ssh_config.ClusterConfigError) as e:
        ssh_config.load(path)
    assert error in str(e.value) and str(path) in str(e.value)


def test_doctor_names_a_console_program_this_machine_lacks(tmp_path: Path) -> None:
    from harness.backends import ssh_config
    from harness.doctor import missing_programs

    path = tmp_path / "cluster.toml"
    path.write_text(cluster_toml('[consoles.pdu]\nspawn = ["no-such-telnet-here", "pdu"]'))
    checks = missing_programs(ssh_config.load(path))
    assert len(checks) == 1 and "no-such-telnet-here" in checks[0].detail


if __name__ == "__main__":
    fake_main(sys.argv[1:])
