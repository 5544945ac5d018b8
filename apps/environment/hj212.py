"""HJ 212-2017 codec: the data-transfer protocol of pollution-source online monitoring systems.

A packet (HJ 212-2017 §6.3) is ``##`` + the data segment's length as 4 decimal digits + the data
segment + its CRC-16 as 4 hex digits + ``\\r\\n``. The data segment is
``QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&...&&`` and CP carries
``DataTime=YYYYMMDDhhmmss;a21026-Rtd=12.3,a21026-Flag=N;...``.

The CRC is the one of the standard's appendix: register 0xFFFF; for each byte,
``crc = (crc >> 8) ^ byte``, then 8 times ``crc = (crc >> 1) ^ 0xA001 if crc & 1 else
crc >> 1``. It is *not* CRC-16/MODBUS (which XORs the byte into the low end without the shift
first): some open-source loggers use that one, and their packets fail here with ``bad_crc``.
Checked against the standard's own example packet (``...CP=&&RtdInterval=30&&1C80``).

Examples
--------
>>> frame = build_packet(cn="2011", mn="LGSW0001", st="31", qn="20260301080000000",
...     cp=data_cp(datetime(2026, 3, 1, 8), {"a21026": {"Rtd": 35.2, "Flag": "N"}}))
>>> packet = decode(frame)
>>> packet.cn, packet.cp.data_time, packet.cp.factors["a21026"]["Rtd"]
('2011', datetime.datetime(2026, 3, 1, 8, 0), 35.2)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

PROTOCOL_VERSION_2017: Final = 1  # Flag bits V5..V0 = 000001 for HJ 212-2017
MAX_SEGMENT: Final = 9999  # the length field has 4 decimal digits

# Command codes (HJ 212-2017 Appendix, Table 7 "command codes").
CN_REALTIME: Final = "2011"
CN_MINUTE: Final = "2051"
CN_HOURLY: Final = "2061"
CN_DAILY: Final = "2031"
CN_REQUEST_ANSWER: Final = "9011"
CN_EXECUTION_RESULT: Final = "9012"
CN_NOTIFICATION: Final = "9013"
CN_DATA_ANSWER: Final = "9014"
DATA_COMMANDS: Final = {
    CN_REALTIME: "real-time",
    CN_MINUTE: "minute",
    CN_HOURLY: "hourly",
    CN_DAILY: "daily",
}
ST_SYSTEM: Final = "91"  # system interaction, used by answers
ST_AIR_SOURCE: Final = "31"  # air pollution source (stack)
ST_AIR_QUALITY: Final = "22"

# Fields of a factor that are numbers; the others (Flag, EFlag, SampleTime, Info, ...) are text.
NUMERIC_FIELDS: Final = frozenset(
    {"Rtd", "Avg", "Min", "Max", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax", "Cou"}
)

# Data flags (HJ 212-2017 Appendix, Table "data flags"): N normal; F stopped; M maintenance;
# S manual input; D fault; C calibration; T over the measuring range; B communication loss.
DATA_FLAGS: Final = {
    "N": "normal",
    "F": "stopped",
    "M": "maintenance",
    "S": "manual",
    "D": "fault",
    "C": "calibration",
    "T": "over range",
    "B": "communication lost",
}

# Factor codes of HJ 212-2017 Appendix B (Table B.1 air pollutants in flue gas and ambient air;
# B.2 flue gas parameters) mapped to the platform's names. Units as the loggers send them.
FACTORS: Final = {
    "a21026": ("so2", "二氧化硫", "mg/m³"),
    "a21002": ("nox", "氮氧化物", "mg/m³"),
    "a21003": ("no", "一氧化氮", "mg/m³"),
    "a21004": ("no2", "二氧化氮", "mg/m³"),
    "a21005": ("co", "一氧化碳", "mg/m³"),
    "a34013": ("dust", "烟尘(颗粒物)", "mg/m³"),
    "a34002": ("pm10", "PM10", "µg/m³"),
    "a34004": ("pm25", "PM2.5", "µg/m³"),
    "a05024": ("o3", "臭氧", "µg/m³"),
    "a19001": ("o2_pct", "氧气含量", "%"),
    "a00000": ("flow_m3h", "废气(标况流量)", "m³/h"),
    "a01011": ("flue_velocity_ms", "烟气流速", "m/s"),
    "a01012": ("flue_temp_c", "烟气温度", "°C"),
    "a01013": ("flue_pressure_kpa", "烟气压力", "kPa"),
    "a01014": ("flue_humidity_pct", "烟气湿度", "%"),
}


class Hj212Error(ValueError):
    """A frame or data segment that does not follow HJ 212-2017.

    Attributes
    ----------
    reason : str
        ``bad_header``, ``bad_length``, ``too_long``, ``bad_crc`` or ``bad_body``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def crc16(data: bytes) -> int:
    """CRC-16 of HJ 212-2017's appendix over the data segment's bytes.

    >>> segment = (b"QN=20160801085857223;ST=32;CN=1062;PW=100000;"
    ...            b"MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&")
    >>> f"{crc16(segment):04X}"
    '1C80'
    """
    # After ``(crc >> 8) ^ byte`` the register holds at most 8 bits, so its eight shift
    # rounds are a function of one byte: a 256-entry table (about 60 times faster). Only the
    # high byte of each step feeds the next, so the loop carries that byte (a shift less).
    if not data:
        return 0xFFFF
    high = 0xFF
    step = _CRC_HIGH
    for byte in data[:-1]:
        high = step[high ^ byte]
    return _CRC_TABLE[high ^ data[-1]]


def _crc_rounds(value: int) -> int:
    """The appendix's eight shift rounds on a register value."""
    for _ in range(8):
        value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
    return value


_CRC_TABLE: Final = tuple(_crc_rounds(v) for v in range(256))
_CRC_HIGH: Final = bytes(v >> 8 for v in _CRC_TABLE)


@dataclass(frozen=True)
class CpData:
    """The CP field: data time, per-factor values and any other parameters.

    Attributes
    ----------
    data_time : datetime or None
        ``DataTime`` (the logger's local time, naive as sent).
    factors : dict
        ``{"a21026": {"Rtd": 12.3, "Flag": "N"}, ...}``; numeric fields as float.
    params : dict
        Parameters that are not per factor: ``QnRtn``, ``ExeRtn``, ``RtdInterval``, ...
    """

    data_time: datetime | None = None
    factors: dict[str, dict[str, float | str]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Packet:
    """A decoded HJ 212-2017 data segment.

    Attributes
    ----------
    qn : str or None
        Request number, ``YYYYMMDDhhmmsszzz``; absent from some notifications.
    st, cn, pw, mn : str
        System code, command code, password, device (MN) number.
    flag : int or None
        The Flag field as sent (None when absent, as in HJ 212-2005 packets).
    pnum, pno : int or None
        Packet count and number when the packet is one part of a split message.
    cp : CpData
        The command parameters.
    """

    st: str
    cn: str
    pw: str
    mn: str
    cp: CpData
    qn: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None

    @property
    def version(self) -> int | None:
        """Protocol version bits V5..V0 of Flag: 1 for HJ 212-2017, 0 for HJ 212-2005."""
        return None if self.flag is None else self.flag >> 2

    @property
    def need_ack(self) -> bool:
        """Flag's A bit: the sender waits for an answer."""
        return bool(self.flag and self.flag & 1)

    @property
    def split(self) -> bool:
        """Flag's D bit: the message is split over several packets (PNUM/PNO)."""
        return bool(self.flag and self.flag & 2)

    @property
    def kind(self) -> str | None:
        """``real-time``, ``minute``, ``hourly`` or ``daily`` for data uploads."""
        return DATA_COMMANDS.get(self.cn)


def _parse_number(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise Hj212Error("bad_body", f"{what} is not a number: {value!r}") from None


def parse_cp(text: str) -> CpData:
    """Parse the inside of ``CP=&&...&&``."""
    data_time: datetime | None = None
    factors: dict[str, dict[str, float | str]] = {}
    params: dict[str, str] = {}
    for group in text.split(";"):
        for item in group.split(","):
            item = item.strip()
            if not item:
                continue  # loggers leave trailing separators
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise Hj212Error("bad_body", f"CP item without key=value: {item!r}")
            code, dash, name = key.partition("-")
            if dash:
                values = factors.setdefault(code, {})
                numeric = name in NUMERIC_FIELDS
                values[name] = _parse_number(value, key) if numeric else value
            elif key == "DataTime":
                data_time = parse_time(value)
            else:
                params[key] = value
    return CpData(data_time, factors, params)


def parse_time(value: str) -> datetime:
    """``YYYYMMDDhhmmss`` (or with milliseconds ``zzz``) as a naive datetime."""
    digits = value.strip()
    # Sliced by hand: strptime took half the time of parsing a whole packet.
    if len(digits) in (14, 17) and digits.isascii() and digits.isdigit():
        d = digits
        millis = int(d[14:]) * 1000 if len(d) == 17 else 0
        try:
            return datetime(
                int(d[:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]), int(d[12:14]),
                millis,
            )  # fmt: skip
        except ValueError:
            pass
    raise Hj212Error("bad_body", f"time is not YYYYMMDDhhmmss: {value!r}")


def _int_field(value: str, name: str) -> int:
    if not value.isdigit():
        raise Hj212Error("bad_body", f"{name} is not a number: {value!r}")
    return int(value)


def parse_segment(segment: str) -> Packet:
    """Decode a data segment (the text between the length and the CRC)."""
    head, marker, rest = segment.partition("CP=&&")
    if not marker:
        raise Hj212Error("bad_body", "no CP=&& in the data segment")
    if not rest.endswith("&&"):
        raise Hj212Error("bad_body", "CP does not end with &&")
    fields: dict[str, str] = {}
    for item in head.split(";"):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise Hj212Error("bad_body", f"header item without key=value: {item!r}")
        fields[key] = value
    missing = [name for name in ("ST", "CN", "PW", "MN") if name not in fields]
    if missing:
        raise Hj212Error("bad_body", f"missing {', '.join(missing)}")
    flag = _int_field(fields["Flag"], "Flag") if "Flag" in fields else None
    return Packet(
        st=fields["ST"],
        cn=fields["CN"],
        pw=fields["PW"],
        mn=fields["MN"],
        cp=parse_cp(rest[:-2]),
        qn=fields.get("QN"),
        flag=flag,
        pnum=_int_field(fields["PNUM"], "PNUM") if "PNUM" in fields else None,
        pno=_int_field(fields["PNO"], "PNO") if "PNO" in fields else None,
    )


def decode(frame: bytes, *, max_segment: int = MAX_SEGMENT) -> Packet:
    """Decode one whole packet, ``##`` to ``\\r\\n``; raises `Hj212Error` with its reason."""
    reader = PacketReader(max_segment=max_segment)
    results = reader.feed(frame)
    if len(results) != 1 or reader.pending:
        raise Hj212Error("bad_length", "not exactly one packet")
    result = results[0]
    if isinstance(result, Hj212Error):
        raise result
    return result


def _format_value(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:g}" if abs(value) < 1e15 else repr(value)


def format_cp(cp: CpData) -> str:
    """The text inside ``CP=&&...&&``: DataTime, then the parameters, then one group per
    factor (fields joined by ``,``)."""
    groups: list[str] = []
    if cp.data_time is not None:
        groups.append(f"DataTime={cp.data_time:%Y%m%d%H%M%S}")
    groups.extend(f"{key}={value}" for key, value in cp.params.items())
    for code, values in cp.factors.items():
        groups.append(",".join(f"{code}-{name}={_format_value(v)}" for name, v in values.items()))
    return ";".join(groups)


def data_cp(data_time: datetime, factors: Mapping[str, Mapping[str, float | str]]) -> CpData:
    """A CP of a data upload (2011/2051/2061/2031)."""
    return CpData(data_time, {code: dict(values) for code, values in factors.items()})


def build_packet(
    *,
    cn: str,
    mn: str,
    cp: CpData,
    st: str = ST_AIR_SOURCE,
    pw: str = "123456",
    qn: str | None = None,
    need_ack: bool = False,
    pnum: int | None = None,
    pno: int | None = None,
) -> bytes:
    """Frame a data segment: header, length, CRC and terminator.

    Raises
    ------
    Hj212Error
        ``too_long`` when the data segment exceeds 9999 bytes; ``bad_body`` for a field that
        would break the framing (``;``, ``&&``, line breaks).
    """
    for name, value in (("ST", st), ("CN", cn), ("PW", pw), ("MN", mn), ("QN", qn or "")):
        if any(mark in value for mark in (";", "&&", "\r", "\n", "=")):
            raise Hj212Error("bad_body", f"{name} contains a separator: {value!r}")
    split = pnum is not None or pno is not None
    if split and not (pnum and pno and 1 <= pno <= pnum):
        raise Hj212Error("bad_body", f"PNO {pno} of PNUM {pnum} is not a valid part")
    flag = (PROTOCOL_VERSION_2017 << 2) | (2 if split else 0) | (1 if need_ack else 0)
    header = [f"QN={qn}"] if qn else []
    header += [f"ST={st}", f"CN={cn}", f"PW={pw}", f"MN={mn}", f"Flag={flag}"]
    if split:
        header += [f"PNUM={pnum}", f"PNO={pno}"]
    segment = (";".join(header) + f";CP=&&{format_cp(cp)}&&").encode("ascii")
    if len(segment) > MAX_SEGMENT:
        raise Hj212Error("too_long", f"data segment of {len(segment)} bytes")
    return b"##%04d%s%04X\r\n" % (len(segment), segment, crc16(segment))


_ANSWER_FLAG: Final = PROTOCOL_VERSION_2017 << 2


def data_answer(request: Packet) -> bytes:
    """CN 9014, the platform's answer to an upload that asked for one (Flag A bit).

    Formatted directly (one answer per packet is the server's hot path); the same bytes as
    `build_packet` would give, whose separator checks the parsed fields already passed.
    """
    qn = f"QN={request.qn};" if request.qn else ""
    segment = (
        f"{qn}ST={ST_SYSTEM};CN={CN_DATA_ANSWER};PW={request.pw};MN={request.mn};"
        f"Flag={_ANSWER_FLAG};CP=&&&&"
    ).encode("ascii", "replace")
    if len(segment) > MAX_SEGMENT:
        raise Hj212Error("too_long", f"data segment of {len(segment)} bytes")
    return b"##%04d%s%04X\r\n" % (len(segment), segment, crc16(segment))


def request_answer(request: Packet, qn_rtn: int = 1) -> bytes:
    """CN 9011: the answer to a request, ``QnRtn`` 1 ready to execute (2 refused, 3 bad PW,
    4 MN error, 5 ST error, 6 Flag error, 7 QN error, 8 CN error, 9 CRC error, 100 unknown)."""
    return build_packet(
        cn=CN_REQUEST_ANSWER,
        mn=request.mn,
        pw=request.pw,
        st=ST_SYSTEM,
        qn=request.qn,
        cp=CpData(params={"QnRtn": str(qn_rtn)}),
    )


def execution_result(request: Packet, exe_rtn: int = 1) -> bytes:
    """CN 9012: the result of executing a request, ``ExeRtn`` 1 success (2 failed, 100 no
    data)."""
    return build_packet(
        cn=CN_EXECUTION_RESULT,
        mn=request.mn,
        pw=request.pw,
        st=ST_SYSTEM,
        qn=request.qn,
        cp=CpData(params={"ExeRtn": str(exe_rtn)}),
    )


class PacketReader:
    """Packets out of a byte stream that arrives in arbitrary chunks.

    `feed` returns, in stream order, each complete `Packet` and an `Hj212Error` for each
    stretch it had to skip: bytes before a ``##`` (``bad_header``), a length field that is not
    4 digits or a frame not ending in ``\\r\\n`` where its length says (``bad_length``), a
    length over ``max_segment`` (``too_long``), a CRC mismatch (``bad_crc``), or a data segment
    that does not parse (``bad_body``). After an error it resynchronizes on the next ``##``.
    The buffer never holds more than one frame of ``max_segment``, so a peer that never ends a
    packet cannot grow it without bound.

    >>> reader = PacketReader()
    >>> frame = build_packet(cn="2011", mn="M1", cp=CpData(params={"RtdInterval": "30"}))
    >>> reader.feed(b"xx" + frame[:20]) and None
    >>> [type(r).__name__ for r in reader.feed(frame[20:])]
    ['Packet']
    """

    def __init__(self, *, max_segment: int = MAX_SEGMENT) -> None:
        if not 0 < max_segment <= MAX_SEGMENT:
            raise ValueError(f"max_segment must be 1..{MAX_SEGMENT}, got {max_segment}")
        self.max_segment = max_segment
        self._buffer = bytearray()
        self._garbage = 0
        # After a bad header the bytes up to the next ## belong to that error, not a new one.
        self._resyncing = False
        self._frame = b""  # the bytes of the item being yielded (see feed_frames)

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Packet | Hj212Error]:
        """Take more bytes; return what they completed."""
        self._buffer += chunk
        return list(self._drain())

    def feed_frames(self, chunk: bytes) -> list[tuple[Packet | Hj212Error, bytes]]:
        """Like `feed`, each result with the bytes it came from (the whole frame of a packet
        or of a bad CRC or body; the first bytes where a header or length was wrong), for
        the dead letters."""
        self._buffer += chunk
        out: list[tuple[Packet | Hj212Error, bytes]] = []
        for item in self._drain():
            out.append((item, self._frame))
            self._frame = b""
        return out

    def _flush_garbage(self) -> Iterator[Hj212Error]:
        if self._garbage and not self._resyncing:
            yield Hj212Error("bad_header", f"{self._garbage} bytes before ##")
        self._garbage = 0
        self._resyncing = False

    def _skip_header(self, error: Hj212Error) -> Hj212Error:
        self._frame = bytes(self._buffer[:64])
        del self._buffer[:2]
        self._resyncing = True
        return error

    def _drain(self) -> Iterator[Packet | Hj212Error]:
        buffer = self._buffer
        while buffer:
            start = buffer.find(b"##")
            if start < 0:
                # Keep a trailing '#' that may start the next header.
                keep = 1 if buffer.endswith(b"#") else 0
                self._garbage += len(buffer) - keep
                del buffer[: len(buffer) - keep]
                return
            # In "###" the header is the last two.
            while start + 2 < len(buffer) and buffer[start + 2] == 0x23:
                start += 1
            if start:
                self._garbage += start
                del buffer[:start]
            yield from self._flush_garbage()
            if len(buffer) < 6:
                return
            digits = bytes(buffer[2:6])
            if not digits.isdigit():
                yield self._skip_header(
                    Hj212Error("bad_length", f"length field {digits!r} is not 4 digits")
                )
                continue
            length = int(digits)
            if length > self.max_segment:
                yield self._skip_header(
                    Hj212Error("too_long", f"data segment of {length} > {self.max_segment}")
                )
                continue
            end = 6 + length + 6
            if len(buffer) < end:
                return
            frame = bytes(buffer[:end])
            if frame[-2:] != b"\r\n":
                yield self._skip_header(
                    Hj212Error("bad_length", f"no CRLF after the {length}-byte segment")
                )
                continue
            del buffer[:end]
            self._frame = frame
            yield self._packet(frame[6 : 6 + length], frame[6 + length : 6 + length + 4])

    @staticmethod
    def _packet(segment: bytes, crc_text: bytes) -> Packet | Hj212Error:
        try:
            sent = int(crc_text, 16)
        except ValueError:
            return Hj212Error("bad_crc", f"CRC field {crc_text!r} is not hex")
        computed = crc16(segment)
        if sent != computed:
            return Hj212Error(
                "bad_crc", f"sent {crc_text.decode('ascii', 'replace')}, computed {computed:04X}"
            )
        try:
            text = segment.decode("ascii")
        except UnicodeDecodeError:
            # Chinese text fields (Info) arrive as GBK from some loggers.
            text = segment.decode("gbk", errors="replace")
        try:
            return parse_segment(text)
        except Hj212Error as error:
            return error


def oxygen_corrected(
    concentration: float, o2_measured_pct: float, o2_reference_pct: float
) -> float:
    """Concentration at a reference oxygen content (the ZsRtd of a factor).

    ``C_ref = C × (21 − O2_ref) / (21 − O2_measured)`` (HJ 75-2017 eq. for 折算浓度; GB 13223
    and GB 13271 set O2_ref: 6 % coal-fired, 3 % gas/oil-fired, 9 % boilers of GB 13271 coal).

    >>> round(oxygen_corrected(100.0, 9.0, 6.0), 3)
    125.0
    """
    if not 0 <= o2_reference_pct < 21:
        raise ValueError(f"reference O2 must be 0..21 %, got {o2_reference_pct}")
    if not 0 <= o2_measured_pct < 21:
        raise ValueError(f"measured O2 must be 0..21 % (exclusive), got {o2_measured_pct}")
    return concentration * (21.0 - o2_reference_pct) / (21.0 - o2_measured_pct)
