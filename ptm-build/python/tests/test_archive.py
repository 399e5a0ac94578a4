import io
import pickle
import pickletools
import struct
import zipfile

from ptm_convert import archive

STORAGE = b"ctorch\nFloatStorage\nq\x00"


def unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def constants_pickle(*keys: str) -> bytes:
    """A protocol-2 pickle naming each storage key after the FloatStorage global, as
    TorchScript's constants.pkl does."""
    body = b"\x80\x02" + STORAGE + b"("
    for key in keys:
        body += b"h\x00" + unicode(key)
    return body + b"t."


def ptl(root: str, records: list[tuple[str, bytes]], when: tuple[int, int, int, int, int, int] = (2024, 5, 6, 7, 8, 10)) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, body in records:
            z.writestr(zipfile.ZipInfo(f"{root}/{name}", date_time=when), body)
    return buffer.getvalue()


def records(data: bytes) -> dict[str, bytes]:
    z = zipfile.ZipFile(io.BytesIO(data))
    return {info.filename: z.read(info) for info in z.infolist()}


WEIGHT = bytes(range(256)) * 4


def sample(root: str = "saved_model", serialization_id: bytes = b"1234567890", other: bytes = b"other") -> bytes:
    return ptl(root, [
        ("data.pkl", b"\x80\x02N."),
        ("constants.pkl", constants_pickle("0.storage", "1.storage", "2.storage")),
        ("bytecode.pkl", constants_pickle("1.storage")),
        ("constants/0.storage", WEIGHT),
        ("constants/1.storage", WEIGHT),
        ("constants/2.storage", other),
        ("code/__torch__.debug_pkl", b"/home/someone/model.py"),
        (".data/serialization_id", serialization_id),
        ("extra/ptm_identity", b"old identity"),
    ])


def test_identical_storages_are_kept_once_and_every_reference_points_at_the_first() -> None:
    out = records(archive.rewrite(sample()))
    assert "model/constants/0.storage" in out and "model/constants/2.storage" in out
    assert "model/constants/1.storage" not in out
    for name in ("model/constants.pkl", "model/bytecode.pkl"):
        strings = [arg for op, arg, _ in pickletools.genops(out[name]) if op.name == "BINUNICODE"]
        assert "1.storage" not in strings and "0.storage" in strings


def test_storages_with_the_same_bytes_but_another_type_stay_apart() -> None:
    double = b"\x80\x02cnumpy\nDoubleStorage\nq\x01(h\x01" + unicode("1.storage") + b"t."
    data = ptl("m", [("constants.pkl", constants_pickle("0.storage") + double),
                     ("constants/0.storage", WEIGHT), ("constants/1.storage", WEIGHT)])
    assert archive.storage_types(constants_pickle("0.storage")) == {"0.storage": "torch FloatStorage"}
    out = records(archive.rewrite(data))
    assert {"model/constants/0.storage", "model/constants/1.storage"} <= set(out)


def test_debug_records_go_and_the_root_is_always_model() -> None:
    out = records(archive.rewrite(sample()))
    assert all(name.startswith("model/") for name in out)
    assert not any(name.endswith(".debug_pkl") for name in out)


def test_the_bytes_depend_on_the_content_alone() -> None:
    first = archive.rewrite(sample("a", b"111"))
    assert archive.rewrite(sample("b", b"222")) == first
    serialization_id = records(first)["model/.data/serialization_id"]
    assert len(serialization_id) == 40 and serialization_id.isdigit()
    changed = sample(other=b"OTHER")
    assert records(archive.rewrite(changed))["model/.data/serialization_id"] != serialization_id
    for info in zipfile.ZipFile(io.BytesIO(first)).infolist():
        assert info.date_time == archive.FIXED_TIME
        assert info.compress_type == zipfile.ZIP_STORED


def test_the_identity_record_is_replaced_or_dropped() -> None:
    assert records(archive.rewrite(sample(), "ptm-identity 1\n"))["model/extra/ptm_identity"] == b"ptm-identity 1\n"
    assert "model/extra/ptm_identity" not in records(archive.rewrite(sample()))


def test_every_record_starts_64_byte_aligned() -> None:
    data = archive.rewrite(sample(), "x" * 3)
    archive.check_alignment(data)
    z = zipfile.ZipFile(io.BytesIO(data))
    for info in z.infolist():
        name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
        assert (info.header_offset + 30 + name_len + extra_len) % archive.ALIGNMENT == 0


def test_rewrite_strings_changes_only_the_strings_asked() -> None:
    original = pickle.dumps(["3.storage", "keep", ("3.storage", 7)], protocol=2)
    changed = archive.rewrite_strings(original, lambda s: "0.storage" if s == "3.storage" else s)
    assert pickle.loads(changed) == ["0.storage", "keep", ("0.storage", 7)]
    assert archive.rewrite_strings(original, lambda s: s) == original
