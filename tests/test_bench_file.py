"""Bench files: a malformed file is refused with one line naming the key."""

import pytest

from labctl.bench_file import parse_bench_text
from labctl.errors import ConfigError

GOOD = """
[bridge]
port = "socket://127.0.0.1:7001"
[instruments.smu_a]
resource = "TCPIP0::127.0.0.1::5025::SOCKET"
[instruments.smu_b]
resource = "TCPIP0::127.0.0.1::5026::SOCKET"
[roles]
supply  = "smu_b:2"
source  = "smu_a:1"
monitor = "smu_b:1"
"""


def test_good_file_binds_roles():
    cfg = parse_bench_text(GOOD)
    assert cfg.bridge_port == "socket://127.0.0.1:7001"
    assert cfg.roles["supply"].instrument == "smu_b" and cfg.roles["supply"].channel == "2"
    assert cfg.roles["source"].instrument == "smu_a"


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda t: t.replace('supply  = "smu_b:2"', 'supply  = "smu_c:2"'), ["roles.supply", "smu_c"]),
        (lambda t: t + 'heater = "smu_a:1"\n', ["roles.heater", "not a role"]),
        (lambda t: t.replace('source  = "smu_a:1"', 'source  = "smu_a"'), ["roles.source", "INSTRUMENT:CHANNEL"]),
        (lambda t: t.replace('monitor = "smu_b:1"\n', ""), ["roles.monitor", "missing"]),
        (lambda t: t.replace('port = "socket://127.0.0.1:7001"', "port = 7001"), ["bridge.port"]),
        (lambda t: t.replace("[bridge]", "[bridge"), ["not valid TOML"]),
        (lambda t: t.replace('supply  = "smu_b:2"', 'supply  = "smu_b:1"'), ["two roles"]),
        (lambda t: t.replace("resource =", "resourse =", 1), ["instruments.smu_a"]),
    ],
)
def test_malformed_files_name_the_key(edit, words):
    with pytest.raises(ConfigError) as err:
        parse_bench_text(edit(GOOD))
    message = str(err.value)
    assert "\n" not in message
    for w in words:
        assert w in message
