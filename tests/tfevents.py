"""An independent reader of TensorBoard event files, for the tests: TFRecord framing with its
masked CRC-32C checks, and just enough protobuf wire format to read Event / Summary / hparams.

Written from the formats' specifications (TFRecord: length u64, masked crc of the length, data,
masked crc of the data; tensorflow/core/util/event.proto, summary.proto and the hparams plugin's
protos), not from tensorboardX, so a test reading its files back checks them against the format.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path: Path) -> list[bytes]:
    """The TFRecord payloads of one file; AssertionError on a bad length or checksum."""
    raw = Path(path).read_bytes()
    out, pos = [], 0
    while pos < len(raw):
        header = raw[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", raw[pos + 8:pos + 12])
        assert length_crc == masked_crc(header), f"{path}: bad length crc at {pos}"
        data = raw[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", raw[pos + 12 + length:pos + 16 + length])
        assert data_crc == masked_crc(data), f"{path}: bad data crc at {pos}"
        out.append(data)
        pos += 16 + length
    return out


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) for each field of one protobuf message."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise AssertionError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


@dataclass
class Events:
    """What a folder's event files say: scalars by tag as [(step, value)], texts, hparams."""

    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    hparams: dict[str, object] = field(default_factory=dict)
    metric_tags: list[str] = field(default_factory=list)
    file_version: str = ""


def _google_value(buf: bytes) -> object:
    for number, _wire, value in fields(buf):
        if number == 2:
            return struct.unpack("<d", value)[0]
        if number == 3:
            return value.decode()
        if number == 4:
            return bool(value)
    return None


def _hparams(content: bytes, out: Events) -> None:
    for number, _, value in fields(content):
        if number == 3:  # session_start_info
            for n2, _, v2 in fields(value):
                if n2 == 1:  # map<string, google.protobuf.Value> entry
                    entry = dict((n3, v3) for n3, _, v3 in fields(v2))
                    out.hparams[entry[1].decode()] = _google_value(entry.get(2, b""))
        elif number == 2:  # experiment: metric_infos (5) -> name (1) -> tag (2)
            for n2, _, v2 in fields(value):
                if n2 == 5:
                    for n3, _, v3 in fields(v2):
                        if n3 == 1:
                            out.metric_tags += [v4.decode() for n4, _, v4 in fields(v3) if n4 == 2]


def read_folder(folder: Path) -> Events:
    """Every event file directly in `folder` (one TensorBoard run)."""
    out = Events()
    files = sorted(Path(folder).glob("events.out.tfevents.*"))
    assert files, f"no event files in {folder}"
    for path in files:
        for data in records(path):
            event = fields(data)
            step = next((v for n, _, v in event if n == 2), 0)
            for number, _, value in event:
                if number == 3:
                    out.file_version = value.decode()
                if number != 5:  # summary
                    continue
                for n, _, v in fields(value):
                    if n != 1:
                        continue
                    val = dict((n2, v2) for n2, _, v2 in fields(v))
                    tag = val.get(1, b"").decode()
                    plugin = b""
                    if 9 in val:  # metadata -> plugin_data (1) -> plugin_name (1), content (2)
                        pdata = dict((n3, v3) for n3, _, v3 in fields(val[9])).get(1, b"")
                        pd = dict((n4, v4) for n4, _, v4 in fields(pdata))
                        plugin = pd.get(1, b"")
                        if plugin == b"hparams":
                            _hparams(pd.get(2, b""), out)
                    if 2 in val:
                        out.scalars.setdefault(tag, []).append((step, struct.unpack("<f", val[2])[0]))
                    elif plugin == b"text" and 8 in val:  # TensorProto string_val (8)
                        texts = [v5 for n5, _, v5 in fields(val[8]) if n5 == 8]
                        out.texts[tag] = b"".join(texts).decode()
                    elif 8 in val and plugin == b"scalars":  # a scalar as a tensor: float_val (5)
                        tensor = dict((n5, v5) for n5, _, v5 in fields(val[8]))
                        out.scalars.setdefault(tag, []).append((step, struct.unpack("<f", tensor[5][:4])[0]))
    return out
