"""The InfiniiVision driver against the scope emulator, over pyvisa-py sockets as on a real bench (ttfs-bench.md 6.2).

Wire transcripts pin the exact command lines each operation sends
(:meth:`InstrumentServer.recording`), PyMeasure style; the physics tests feed
the emulator known signals and check what comes back through the preamble and
the WORD block: axes, quantisation, averaging and the *OPC? timeout rule of
contract 3.4.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import pyvisa

from labctl.drivers.infiniivision import InfiniiVision, parse_preamble
from labctl.errors import InstrumentError
from labctl.sim.clock import VirtualClock
from labctl.sim.scope_emulator import ARM_LATENCY_S, InfiniiVisionEmulator, ScopeServer

ERR = ":SYSTem:ERRor?"
FENCE = "*OPC?"
PERIOD_S = 218e-6  # contract 8.4: W 16 us, gap 200 us


@pytest.fixture(scope="module")
def rm():
    return pyvisa.ResourceManager("@py")


@pytest.fixture
def scope(rm):
    emulator = InfiniiVisionEmulator(VirtualClock(), seed=4)
    with ScopeServer(emulator) as server:
        driver = InfiniiVision.from_resource(server.resource, rm)
        yield emulator, server, driver
        driver.close()


def _record(server, driver, action):
    """Lines the scope received while ``action`` ran, fenced by a query on the same session."""
    with server.recording() as lines:
        action()
        driver.query(FENCE)
    return lines[:-1]


def _set_up(driver, averages=16):
    channel = driver.channel("1")
    channel.set_input()
    channel.set_vertical(0.1, 1.1)
    driver.set_timebase(2e-6, 0.0, "LEFT")
    driver.set_edge_trigger("EXT", 1.0)
    driver.set_averaging(averages)


def _ramp(k, name, t_s):
    """A membrane-like test signal on channel 1: 1.30 V before the trigger, then falling 20 mV/us (on screen)."""
    return np.where(t_s < 0, 1.30, 1.30 - 0.02e6 * t_s) if name == "1" else np.zeros_like(t_s)


def test_identity_and_model_table(scope):
    _, _, driver = scope
    assert driver.model == "DSOX3024T"
    assert driver.input_names() == ("1", "2", "3", "4", "EXT")
    assert "MSO-X 3024A" in InfiniiVision.CHANNELS and InfiniiVision.CHANNELS["DSOX2002A"] == ("1", "2")


def test_set_up_transcript_is_contract_3_4_step_2_with_full_precision_numbers(scope):
    _, server, driver = scope
    lines = _record(server, driver, lambda: _set_up(driver))
    sent = [line for line in lines if line != ERR]
    assert sent == [
        ":CHANnel1:COUPling DC", ":CHANnel1:IMPedance ONEMeg", ":CHANnel1:PROBe 1.0", ":CHANnel1:DISPlay ON",
        ":CHANnel1:SCALe 0.1", ":CHANnel1:OFFSet 1.1",
        ":TIMebase:SCALe 2e-06", ":TIMebase:POSition 0.0", ":TIMebase:REFerence LEFT",
        ":TRIGger:MODE EDGE", ":TRIGger:EDGE:SOURce EXTernal", ":TRIGger:EDGE:LEVel 1.0",
        ":TRIGger:EDGE:SLOPe POSitive", ":TRIGger:SWEep NORMal",
        ":ACQuire:TYPE AVERage", ":ACQuire:COUNt 16",
    ]
    assert lines.count(ERR) == len(sent)  # every setting is checked at once
    lines = _record(server, driver, lambda: driver.channel("2").set_vertical(1.234567891e-3, -0.3333333333333333))
    assert lines == [":CHANnel2:SCALe 0.001234567891", ERR, ":CHANnel2:OFFSet -0.3333333333333333", ERR]
    lines = _record(server, driver, lambda: driver.set_edge_trigger("3", 1.0))
    assert ":TRIGger:EDGE:SOURce CHANnel3" in lines


def test_acquisition_transcript_and_axes_from_the_preamble(scope):
    emulator, server, driver = scope
    _set_up(driver)
    with server.recording() as lines:
        driver.digitize("1")
        time.sleep(0.05)
        emulator.trigger_train("EXT", 0.01 + PERIOD_S * np.arange(475), 3.3, _ramp)
        assert driver.wait_complete(2.0)
        wave = driver.read_waveform("1", 2000)
    assert lines == [":DIGitize CHANnel1", "*OPC?",
                     ":WAVeform:SOURce CHANnel1", ERR, ":WAVeform:FORMat WORD", ERR, ":WAVeform:BYTeorder LSBFirst",
                     ERR, ":WAVeform:UNSigned ON", ERR, ":WAVeform:POINts 2000", ERR,
                     ":WAVeform:PREamble?", ":WAVeform:DATA?", ERR]
    p = wave.preamble
    assert (p.format, p.type, p.points, p.count) == (1, 2, 2000, 16)
    assert p.x_increment_s == pytest.approx(10e-9) and p.x_origin_s == pytest.approx(-2e-6)
    assert p.y_increment_v == pytest.approx(8 * 0.1 / 65536) and p.y_origin_v == 1.1 and p.y_reference == 32768
    assert wave.t_s[0] == pytest.approx(-2e-6) and wave.t_s[-1] == pytest.approx(17.99e-6)
    gain, offset = emulator.true_chain("1")
    expected = gain * _ramp(0, "1", wave.t_s) + offset
    # 0.02 div rms per record and an 8-bit ADC (3.1 mV), averaged 16 times
    residual = wave.v - expected
    assert abs(residual.mean()) < 0.3e-3
    assert 0.1e-3 < residual.std() < 1.2e-3


def test_averaging_lowers_the_noise_as_the_root_of_the_count(scope):
    emulator, _, driver = scope
    spreads = {}
    for count in (1, 64):
        _set_up(driver, averages=count)
        driver.digitize("1")
        time.sleep(0.05)
        start = emulator.clock.now() + ARM_LATENCY_S
        emulator.trigger_train("EXT", start + PERIOD_S * np.arange(count + 5), 3.3, _ramp)
        assert driver.wait_complete(2.0)
        wave = driver.read_waveform("1", 2000)
        gain, offset = emulator.true_chain("1")
        spreads[count] = float(np.std(wave.v - gain * _ramp(0, "1", wave.t_s) - offset))
    assert wave.preamble.type == 2 and wave.preamble.count == 64
    assert 4.0 < spreads[1] / spreads[64] < 12.0  # sqrt(64) = 8


def test_a_digitize_without_trigger_times_out_and_an_idle_batch_completes_it(scope):
    emulator, _, driver = scope
    _set_up(driver, averages=4)
    driver.digitize("1")
    assert driver.wait_complete(0.3) is False  # contract 3.4: no answer within the batch time plus 1 s
    emulator.trigger_train("EXT", emulator.clock.now() + ARM_LATENCY_S + PERIOD_S * np.arange(10), 3.3, _ramp)
    assert driver.query("*IDN?").startswith("KEYSIGHT")  # the stale "1" is discarded by the resynchronisation
    assert driver.read_waveform("1", 500).preamble.count == 4


def test_edges_of_the_wrong_input_or_below_the_level_do_not_trigger(scope):
    emulator, _, driver = scope
    _set_up(driver, averages=2)
    driver.digitize("1")
    time.sleep(0.05)
    edges = emulator.clock.now() + ARM_LATENCY_S + PERIOD_S * np.arange(10)
    emulator.trigger_train("2", edges, 3.3, _ramp)  # SYNC into channel 2, trigger on EXT
    emulator.trigger_train("EXT", edges + 1.0, 0.9, _ramp)  # a pulse that never reaches the 1.0 V level
    assert driver.wait_complete(0.3) is False


def test_errors_follow_6_2(scope):
    _, _, driver = scope
    with pytest.raises(InstrumentError, match='-113,"Undefined header"'):
        driver.configure(":BOGus:NODE 1")
    with pytest.raises(InstrumentError, match='-222,"Data out of range"'):
        driver.configure(":ACQuire:COUNt 1")
    with pytest.raises(InstrumentError, match='-224,"Illegal parameter value"'):
        driver.configure(":TIMebase:REFerence MIDDLE")
    with pytest.raises(InstrumentError, match='-222,"Data out of range"'):
        driver.channel("1").set_vertical(100.0, 0.0)  # 100 V/div on a 1 Mohm input
    assert driver.query(":SYSTem:ERRor?") == '+0,"No error"'


def test_preamble_parsing_is_strict():
    p = parse_preamble("+1,+2,+2000,+16,+1.00000000E-08,-2.00000000E-06,+0,+1.22070313E-05,+1.10000000E+00,+32768")
    assert p.volts(np.array([47830]))[0] == pytest.approx(1.2839, abs=1e-4)  # contract 8.4
    assert p.times_s(3)[2] == pytest.approx(-1.98e-6)
    with pytest.raises(InstrumentError, match="preamble"):
        parse_preamble("+1,+2,+2000")
