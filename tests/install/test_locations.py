"""edgeprune/locations.py: packaged data read-only, user profiles and caches in user folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgeprune import locations
from edgeprune.devices.profile import list_profiles, load_profile, parse_device

PACKAGE = Path(locations.__file__).resolve().parent
HOST = locations.profiles_dir() / "host.toml"


@pytest.fixture
def user_dirs(tmp_path, monkeypatch):
    for var in ("EDGEPRUNE_CACHE", "EDGEPRUNE_CACHE_DIR", "EDGEPRUNE_CONFIG_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_packaged_data_is_the_package_and_holds_profiles_and_the_runner():
    assert (locations.profiles_dir() / "host.toml").is_file()
    assert (locations.runtimes_dir() / "runner.py").is_file()
    assert (locations.runtimes_dir() / "emulation" / "run_job.sh").is_file()


def test_user_folders_follow_xdg_and_the_overrides(user_dirs, monkeypatch):
    home = user_dirs / "home"
    assert locations.config_dir() == home / ".config" / "edgeprune"
    assert locations.cache_dir() == home / ".cache" / "edgeprune"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user_dirs / "xc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(user_dirs / "xk"))
    assert locations.config_dir() == user_dirs / "xc" / "edgeprune"
    assert locations.luts_dir() == user_dirs / "xk" / "edgeprune" / "luts"
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(user_dirs / "old"))          # the older name still works
    assert locations.cache_dir() == user_dirs / "old"
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(user_dirs / "c"))
    monkeypatch.setenv("EDGEPRUNE_CONFIG_DIR", str(user_dirs / "k"))
    assert locations.cache_dir() == user_dirs / "c" and locations.config_dir() == user_dirs / "k"
    assert locations.tvm_tuning_dir() == user_dirs / "c" / "tvm-tuning"
    assert locations.user_profiles_dir() == user_dirs / "k" / "profiles"


def test_a_user_profile_is_found_by_name_and_wins_over_a_packaged_one(user_dirs, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_CONFIG_DIR", str(user_dirs / "k"))
    mine = user_dirs / "k" / "profiles"
    mine.mkdir(parents=True)
    text = HOST.read_text()
    (mine / "my-board.toml").write_text(re.sub(r'(?m)^name = .*$', 'name = "my-board"', text))
    (mine / "host.toml").write_text(re.sub(r'(?m)^description = "', 'description = "mine: ', text))
    assert load_profile("my-board").path == mine / "my-board.toml"
    assert parse_device("my-board").kind == "local"
    assert load_profile("host").description.startswith("mine: ")
    names = [p.name for p in list_profiles()]
    assert names.count("host") == 1 and "my-board" in names and "pixel-7" in names


def test_a_shipped_lut_is_copied_into_the_cache_and_grows_there(user_dirs, monkeypatch):
    shipped = user_dirs / "pkg" / "luts"
    shipped.mkdir(parents=True)
    doc = {"format": "edgeprune-lut", "entries": []}
    (shipped / "pixel-7-ort-abc.json").write_text(json.dumps(doc))
    monkeypatch.setattr(locations, "packaged_luts_dir", lambda: shipped)
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(user_dirs / "cache"))
    path = locations.lut_file("pixel-7-ort-abc.json")
    assert path == user_dirs / "cache" / "luts" / "pixel-7-ort-abc.json"
    assert json.loads(path.read_text()) == doc
    path.write_text("{}")                                   # a write goes to the copy
    assert json.loads((shipped / "pixel-7-ort-abc.json").read_text()) == doc
    assert locations.lut_file("pixel-7-ort-abc.json").read_text() == "{}"   # the copy is kept
    assert not locations.lut_file("other.json").exists()    # nothing shipped: a new cache file


def test_default_lut_path_is_in_the_user_cache(user_dirs, monkeypatch):
    from edgeprune.lut.paths import default_lut_path

    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(user_dirs / "cache"))
    path = default_lut_path(parse_device("host"), "ort")
    assert path.parent == user_dirs / "cache" / "luts" and path.name.startswith("host-ort-")


def test_no_module_finds_files_relative_to_its_own_source():
    """Only locations.py may know where the package sits; nothing climbs out of it."""
    offenders = []
    for py in PACKAGE.rglob("*.py"):
        if py.name == "locations.py":
            continue
        text = py.read_text()
        if re.search(r"Path\(__file__\)[^\n]*\.parents?\b", text):
            offenders.append(str(py.relative_to(PACKAGE)))
    assert offenders == []


def test_cache_and_config_flags_move_the_user_folders(user_dirs, monkeypatch, capsys):
    from edgeprune.cli import main

    monkeypatch.delenv("EDGEPRUNE_TRACKER", raising=False)
    assert main(["--cache-dir", str(user_dirs / "c"), "--config-dir", str(user_dirs / "k"), "devices", "--json"]) == 0
    where = json.loads(capsys.readouterr().out)["locations"]
    assert where["luts"] == str(user_dirs / "c" / "luts")
    assert where["user_profiles"] == str(user_dirs / "k" / "profiles")
    assert where["packaged_profiles"] == str(locations.profiles_dir())
