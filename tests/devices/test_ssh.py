"""Linux boards over ssh: a real OpenSSH server on 127.0.0.1, started here with a throwaway
host key and user key (this machine plays the board; its Python stands in for the board's)."""

from __future__ import annotations

import json
import sys

import pytest

from edgeprune.cli import main
from edgeprune.devices.base import BenchTask
from edgeprune.devices.profile import parse_device
from edgeprune.devices.ssh import SshDevice
from edgeprune.errors import DeviceError
from edgeprune.lut.table import load_lut
from tests.devices.sshd_server import SshServer, free_port
from tests.devices.micro import conv_model, micro_onnx


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with SshServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def board(sshd, tmp_path, monkeypatch):
    for k, v in sshd.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("EDGEPRUNE_DEVICE_PYTHON", sys.executable)
    monkeypatch.setenv("EDGEPRUNE_DEVICE_WORKDIR", str(tmp_path / "board"))
    monkeypatch.setenv("EDGEPRUNE_RETRY_DELAY", "0.05")
    return sshd


def test_measures_on_the_board_and_streams_each_result(board, tmp_path):
    device = SshDevice(parse_device(board.spec))
    tasks = [BenchTask(id=f"conv|{c}", model=conv_model(tmp_path, c), warmup=1, repeats=3, min_seconds=0.0)
             for c in (8, 16)]
    tasks[1].save_outputs = True
    seen = []
    results = device.measure(tasks, on_result=seen.append)
    assert [r.id for r in seen] == ["conv|8", "conv|16"] and results == seen
    assert all(r.ok and r.median_ms > 0 and r.count >= 3 for r in results)
    assert results[1].outputs["z"].shape == (1, 16, 16, 16)
    # the host key was accepted once into the private known_hosts, never the user's
    host_key = (board.dir / "host_key.pub").read_text().split()[1]
    assert board.known_hosts.read_text().split()[2] == host_key
    assert (tmp_path / "board/runtime/runner.py").exists()
    assert not list((tmp_path / "board/jobs").iterdir())


def test_a_board_lost_midway_is_a_device_error_and_what_was_pulled_stays(board, tmp_path):
    tasks = [BenchTask(id=f"conv|{c}", model=conv_model(tmp_path, c), warmup=1, repeats=3, min_seconds=0.5)
             for c in (8, 16, 24, 32, 40)]
    kept = []

    def unplug_after_the_first(result):
        kept.append(result)
        if len(kept) == 1:
            board.pull_the_plug()

    try:
        with pytest.raises(DeviceError, match=f"{board.spec}: .*after 3 attempts"):
            SshDevice(parse_device(board.spec)).measure(tasks, on_result=unplug_after_the_first)
    finally:
        board.plug_back_in()
    assert 1 <= len(kept) < len(tasks) and all(r.ok for r in kept)
    done = {r.id for r in kept}
    rest = SshDevice(parse_device(board.spec)).measure([t for t in tasks if t.id not in done])
    assert sorted(r.id for r in rest) == sorted(t.id for t in tasks if t.id not in done)
    assert all(r.ok for r in rest)


@pytest.mark.slow
def test_profile_and_latency_measure_through_ssh(board, tmp_path, capsys):
    model, lut = micro_onnx(tmp_path), tmp_path / "lut.json"
    profile = tmp_path / "testboard.toml"   # the board's address, a fixed channel step, short timings
    profile.write_text(f'''
name = "testboard"
description = "this machine over ssh"
[reach]
kind = "ssh"
address = "{board.spec}"
[cpu]
arch = "x86_64"
cores = 2
[runtimes.ort]
providers = ["CPUExecutionProvider"]
[measure]
channel_step = 2
threads = 1
warmup = 1
repeats = 3
min_seconds = 0.0
''')
    assert main(["profile", "--device", str(profile), "--model", str(model), "-o", str(lut)]) == 0
    table = load_lut(lut)
    assert table.header["device"] == "testboard" and table.entries
    capsys.readouterr()
    assert main(["latency", str(model), "--device", str(profile), "--lut", str(lut), "--measure", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["predicted"]["latency_ms"] > 0
    assert out["measured"]["median_ms"] > 0 and out["measured"]["count"] >= 30


def test_a_closed_port_is_a_device_error_after_retries(board, tmp_path):
    spec = f"ssh:{board.user}@127.0.0.1:{free_port()}"
    with pytest.raises(DeviceError, match=f"{spec}: .*(refused|closed).*after 3 attempts"):
        SshDevice(parse_device(spec)).measure([BenchTask(id="x", model=conv_model(tmp_path, 8))])


@pytest.mark.parametrize("user, host", [
    ("{user}", "127.0.0.1;touch {tmp}/PWNED"),
    ("{user}$(touch {tmp}/PWNED)", "127.0.0.1"),
    ("{user}", "-oProxyCommand=touch {tmp}/PWNED"),
])
def test_hosts_and_users_with_shell_metacharacters_are_passed_verbatim(board, tmp_path, user, host, capsys):
    user, host = user.format(user=board.user, tmp=tmp_path), host.format(tmp=tmp_path)
    spec = f"ssh:{user}@{host}:{board.port}"
    lut = tmp_path / "lut.json"
    assert main(["profile", "--device", spec, "--model", str(conv_model(tmp_path, 8)), "-o", str(lut)]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and spec.split("@")[1].split(":")[0] in err
    assert not (tmp_path / "PWNED").exists() and not lut.exists()
