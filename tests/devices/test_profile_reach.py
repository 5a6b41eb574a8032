"""How-to-reach settings of adb/ssh devices can live in a profile's [reach] table."""

from pathlib import Path

from edgeprune.devices.profile import load_profile_file
from edgeprune.devices.remote import device_setting

PIXEL = Path(__file__).resolve().parents[2] / "profiles" / "pixel-7.toml"


def test_reach_table_carries_python_and_workdir(tmp_path):
    text = PIXEL.read_text().replace("[reach]", '[reach]\nworkdir = "/data/local/tmp/ep"\npython = ["python3"]', 1)
    path = tmp_path / "my-phone.toml"
    path.write_text(text)
    profile = load_profile_file(path)
    assert device_setting(profile, "workdir") == "/data/local/tmp/ep"
    assert device_setting(profile, "python") == ["python3"]
