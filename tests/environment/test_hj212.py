"""HJ 212-2017 codec: CRC vectors, real packets, framing edge cases, answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from apps.environment import hj212
from apps.environment.hj212 import Hj212Error, Packet, PacketReader

# The example packet printed in HJ 212-2017 itself (set the real-time interval, CN 1062),
# reproduced in many open-source implementations with the same CRC 1C80.
STANDARD_EXAMPLE = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&RtdInterval=30&&1C80\r\n"
)
# A real-time air-quality upload (CN 2011) from the test suite of the open-source Java
# hj-t212-parser, CRC in lower case as that logger sent it; it has a misspelt field
# ("LA-td") and a trailing ";" before "&&", as real loggers do.
REAL_TIME_UPLOAD = (
    b"##0453QN=20160801085000001;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=7;"
    b"CP=&&DataTime=20160801084000;a21005-Rtd=1.1,a21005-Flag=N;a21004-Rtd=112,a21004-Flag=N;"
    b"a21026-Rtd=58,a21026-Flag=N;LA-td=50.1,LA-Flag=N;a34004-Rtd=207,a34004-Flag=N;"
    b"a34002-Rtd=295,a34002-Flag=N;a01001-Rtd=12.6,a01001-Flag=N;a01002-Rtd=32,a01002-Flag=N;"
    b"a01006-Rtd=101.02,a01006-Flag=N;a01007-Rtd=2.1,a01007-Flag=N;a01008-Rtd=120,"
    b"a01008-Flag=N;a34001-Rtd=217,a34001-Flag=N;&&c0c1\r\n"
)
# A packet from an open-source logger that computes CRC-16/MODBUS instead of the standard's
# algorithm (its header says so): the standard's CRC of this segment is D801, not EF98.
MODBUS_CRC_PACKET = (
    b"##0091QN=20170516010101001;ST=22;CN=1062;PW=123456;MN=ABCDEFG1234567;Flag=3;"
    b"CP=&&RtdInterval=30&&EF98\r\n"
)


def test_crc_vectors() -> None:
    assert hj212.crc16(STANDARD_EXAMPLE[6:-6]) == 0x1C80
    assert hj212.crc16(REAL_TIME_UPLOAD[6:-6]) == 0xC0C1
    assert hj212.crc16(MODBUS_CRC_PACKET[6:-6]) == 0xD801
    assert hj212.crc16(b"") == 0xFFFF
    # Any text: the module against the appendix's loop written out again below.
    for sample in (b"1", b"QN=1;ST=31", bytes(range(256))):
        assert hj212.crc16(sample) == _reference_crc(sample)


def _reference_crc(data: bytes) -> int:
    """The appendix's algorithm written out again, bit by bit, independently."""
    register = 0xFFFF
    for byte in data:
        register = ((register >> 8) & 0xFF) ^ byte
        for _ in range(8):
            low_bit = register & 0x0001
            register >>= 1
            if low_bit:
                register ^= 0xA001
    return register


def test_standard_example_decodes() -> None:
    packet = hj212.decode(STANDARD_EXAMPLE)
    assert (packet.qn, packet.st, packet.cn, packet.pw) == (
        "20160801085857223",
        "32",
        "1062",
        "100000",
    )
    assert packet.mn == "010000A8900016F000169DC0"
    assert packet.flag == 5 and packet.version == 1 and packet.need_ack and not packet.split
    assert packet.cp.params == {"RtdInterval": "30"}


def test_real_time_upload_decodes() -> None:
    packet = hj212.decode(REAL_TIME_UPLOAD)
    assert packet.kind == "real-time"
    assert packet.cp.data_time == datetime(2016, 8, 1, 8, 40)
    assert packet.cp.factors["a21026"] == {"Rtd": 58.0, "Flag": "N"}
    assert packet.cp.factors["a01006"]["Rtd"] == pytest.approx(101.02)
    assert packet.cp.factors["LA"] == {"td": "50.1", "Flag": "N"}  # unknown field kept as text
    # Flag 7: version 1, D and A set, but this logger sends no PNUM/PNO.
    assert packet.split and packet.need_ack and packet.pnum is None


def test_modbus_crc_packet_is_refused() -> None:
    with pytest.raises(Hj212Error) as caught:
        hj212.decode(MODBUS_CRC_PACKET)
    assert caught.value.reason == "bad_crc"
    assert "D801" in str(caught.value)


def _upload(cn: str, value: float = 35.2, **kwargs: object) -> bytes:
    cp = hj212.data_cp(
        datetime(2026, 3, 1, 8, 0),
        {
            "a21026": {"Avg": value, "Min": 30.0, "Max": 40.5, "ZsAvg": 42.0, "Flag": "N"},
            "a19001": {"Avg": 9.5, "Flag": "N"},
        },
    )
    return hj212.build_packet(cn=cn, mn="LGSW0001", qn="20260301080000123", cp=cp, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cn", ["2011", "2051", "2061", "2031"])
def test_round_trip_of_every_data_command(cn: str) -> None:
    frame = _upload(cn, need_ack=True)
    assert frame.startswith(b"##") and frame.endswith(b"\r\n")
    assert int(frame[2:6]) == len(frame) - 12
    packet = hj212.decode(frame)
    assert packet.cn == cn and packet.kind == hj212.DATA_COMMANDS[cn]
    assert packet.flag == 5 and packet.need_ack
    assert packet.cp.factors["a21026"] == {
        "Avg": 35.2,
        "Min": 30.0,
        "Max": 40.5,
        "ZsAvg": 42.0,
        "Flag": "N",
    }


def test_split_packets_carry_pnum_pno() -> None:
    frame = _upload("2061", pnum=3, pno=2)
    packet = hj212.decode(frame)
    assert packet.flag == 6 and packet.split and (packet.pnum, packet.pno) == (3, 2)
    with pytest.raises(Hj212Error, match="PNO"):
        _upload("2061", pnum=2, pno=3)


def test_answers() -> None:
    request = hj212.decode(_upload("2011", need_ack=True))
    answer = hj212.decode(hj212.data_answer(request))
    assert (answer.cn, answer.st, answer.qn, answer.mn) == (
        "9014",
        "91",
        "20260301080000123",
        "LGSW0001",
    )
    assert answer.flag == 4 and not answer.need_ack
    assert hj212.decode(hj212.request_answer(request)).cp.params == {"QnRtn": "1"}
    assert hj212.decode(hj212.execution_result(request, 2)).cp.params == {"ExeRtn": "2"}
    assert hj212.data_answer(request).endswith(
        b"CP=&&&&" + b"%04X\r\n" % hj212.crc16(hj212.data_answer(request)[6:-6])
    )
    # The server's directly formatted answer is byte for byte the general builder's.
    for qn in ("20260301080000123", None):
        asked = replace(request, qn=qn)
        built = hj212.build_packet(cn="9014", mn=asked.mn, pw=asked.pw, st="91", qn=qn,
                                   cp=hj212.CpData())  # fmt: skip
        assert hj212.data_answer(asked) == built


def test_reader_split_across_reads_byte_by_byte() -> None:
    reader = PacketReader()
    out: list[Packet | Hj212Error] = []
    for i in range(len(REAL_TIME_UPLOAD)):
        out += reader.feed(REAL_TIME_UPLOAD[i : i + 1])
    assert len(out) == 1 and isinstance(out[0], Packet)
    assert reader.pending == 0


def test_reader_two_packets_in_one_read_with_garbage_between() -> None:
    reader = PacketReader()
    out = reader.feed(b"\x00\xffjunk" + STANDARD_EXAMPLE + b"noise#" + REAL_TIME_UPLOAD)
    reasons = [r.reason if isinstance(r, Hj212Error) else r.cn for r in out]
    assert reasons == ["bad_header", "1062", "bad_header", "2011"]
    assert reader.pending == 0


def test_reader_bad_crc_then_recovers() -> None:
    broken = STANDARD_EXAMPLE.replace(b"1C80", b"1C81")
    out = PacketReader().feed(broken + STANDARD_EXAMPLE)
    assert [r.reason if isinstance(r, Hj212Error) else "ok" for r in out] == ["bad_crc", "ok"]


def test_reader_bad_length_and_resync() -> None:
    # Length says 0100, one byte short: no CRLF where it should be.
    short = b"##0100" + STANDARD_EXAMPLE[6:]
    out = PacketReader().feed(short + STANDARD_EXAMPLE)
    reasons = [r.reason if isinstance(r, Hj212Error) else "ok" for r in out]
    assert reasons[0] == "bad_length" and reasons[-1] == "ok"
    out = PacketReader().feed(b"##01a1" + STANDARD_EXAMPLE)
    assert [r.reason if isinstance(r, Hj212Error) else "ok" for r in out] == ["bad_length", "ok"]


def test_reader_too_long_and_never_ending_packet() -> None:
    reader = PacketReader(max_segment=1024)
    out = reader.feed(b"##2000QN=...")
    assert [r.reason for r in out if isinstance(r, Hj212Error)] == ["too_long"]
    # A peer that streams bytes with no header never grows the buffer.
    for _ in range(100):
        reader.feed(b"x" * 1000)
    assert reader.pending <= 1
    # A header at the limit waits for its bytes, no more.
    reader = PacketReader(max_segment=1024)
    reader.feed(b"##1024" + b"A" * 500)
    assert reader.pending == 506
    out = reader.feed(b"A" * 2000)
    assert [r.reason for r in out if isinstance(r, Hj212Error)] == ["bad_length"]
    assert reader.pending <= 1030


def test_reader_bad_body() -> None:
    segment = b"QN=1;ST=31;CN=2011;PW=1;Flag=4;CP=&&DataTime=20260301080000&&"  # no MN
    frame = b"##%04d%s%04X\r\n" % (len(segment), segment, hj212.crc16(segment))
    (error,) = PacketReader().feed(frame)
    assert isinstance(error, Hj212Error) and error.reason == "bad_body" and "MN" in str(error)
    segment = b"ST=31;CN=2011;PW=1;MN=M;CP=&&a21026-Rtd=abc&&"
    frame = b"##%04d%s%04X\r\n" % (len(segment), segment, hj212.crc16(segment))
    (error,) = PacketReader().feed(frame)
    assert isinstance(error, Hj212Error) and "a21026-Rtd" in str(error)
    segment = b"ST=31;CN=2011;PW=1;MN=M;CP=&&DataTime=20261301080000&&"
    frame = b"##%04d%s%04X\r\n" % (len(segment), segment, hj212.crc16(segment))
    (error,) = PacketReader().feed(frame)
    assert isinstance(error, Hj212Error) and "YYYYMMDD" in str(error)


def test_build_refuses_separators_and_oversize() -> None:
    with pytest.raises(Hj212Error, match="MN contains a separator"):
        hj212.build_packet(cn="2011", mn="A;B", cp=hj212.CpData())
    huge = hj212.data_cp(datetime(2026, 1, 1), {f"a{i:05d}": {"Rtd": 1.0} for i in range(800)})
    with pytest.raises(Hj212Error) as caught:
        hj212.build_packet(cn="2011", mn="M", cp=huge)
    assert caught.value.reason == "too_long"


def test_factor_map_and_oxygen_correction() -> None:
    assert hj212.FACTORS["a21026"][0] == "so2"
    assert hj212.FACTORS["a21002"][0] == "nox"
    assert hj212.FACTORS["a34013"][0] == "dust"
    assert hj212.FACTORS["a19001"][0] == "o2_pct"
    assert hj212.FACTORS["a00000"][0] == "flow_m3h"
    # Coal boiler at 9 % O2 against a 6 % reference: 100 × 15 / 12 = 125.
    assert hj212.oxygen_corrected(100.0, 9.0, 6.0) == pytest.approx(125.0)
    # At the reference itself nothing changes.
    assert hj212.oxygen_corrected(80.0, 6.0, 6.0) == pytest.approx(80.0)
    with pytest.raises(ValueError, match="measured O2"):
        hj212.oxygen_corrected(80.0, 21.0, 6.0)
