"""toolkit/modelfile.py: what MODEL is, told on the host before anything reads much of it; the default output
names."""
import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from trtkit.errors import InvalidModel, ModelNotFound
from trtkit.modelfile import HDF5_SIGNATURE, MAX_ARCHIVE_ENTRIES, resolve_model, safe_name

LOCAL = struct.Struct("<4s5H3L2H")
CENTRAL = struct.Struct("<4s6H3L5H2L")
ZIP64_END = struct.Struct("<4sQ2H2L4Q")
ZIP64_LOCATOR = struct.Struct("<4sLQL")
END = struct.Struct("<4s4H2LH")

def test_resolve_model_kinds(tmp_path):
    h5 = tmp_path / "m.h5"
    h5.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    assert resolve_model(h5).format == "h5"
    keras_file = tmp_path / "m.keras"
    with zipfile.ZipFile(keras_file, "w") as z:
        z.writestr("config.json", json.dumps({}))
    assert resolve_model(keras_file).format == "keras"
    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"x")
    assert resolve_model(saved).format == "savedmodel"
    with pytest.raises(ModelNotFound):
        resolve_model(tmp_path / "missing.h5")
    hdf5_named_keras = tmp_path / "h5.keras"
    hdf5_named_keras.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    with pytest.raises(InvalidModel):
        resolve_model(hdf5_named_keras)


@pytest.mark.parametrize("name, safe", [("..", "model"), (".", "model"), ("", "model"), ("a b:c", "a_b_c"),
                                        ("..hidden", "hidden"), ("lstm_1", "lstm_1")])
def test_default_out_names_are_sanitized(name, safe):
    assert safe_name(name) == safe


def zip_of_empty_entries(path: Path, count: int, stated_in_end_record: tuple[int, int] | None = None) -> Path:
    """A stored zip of config.json and count-1 more empty entries, with zip64 end records (as zipfile writes
    past 65,535 entries); its classic end record may state other numbers (entries, directory bytes)."""
    names = [b"config.json", *(b"%d" % i for i in range(count - 1))]
    local, central, offset = [], [], 0
    for name in names:
        local.append(LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name)
        central.append(CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset)
                       + name)
        offset += len(local[-1])
    directory = b"".join(central)
    zip64_at = offset + len(directory)
    entries, size = stated_in_end_record or (0xFFFF, len(directory))
    path.write_bytes(b"".join(local) + directory
                     + ZIP64_END.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), offset)
                     + ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, zip64_at, 1)
                     + END.pack(b"PK\x05\x06", 0, 0, entries, entries, size, 0xFFFFFFFF, 0))
    return path


def test_an_archive_of_few_entries_is_a_keras_model(tmp_path):
    model = zip_of_empty_entries(tmp_path / "model.keras", 3)
    assert zipfile.ZipFile(model).namelist()[0] == "config.json"
    assert resolve_model(model).format == "keras"


@pytest.mark.parametrize("stated", [None, (3, 200)], ids=["as-zipfile-writes", "classic-record-understates"])
def test_an_archive_of_300000_entries_is_refused_before_its_directory_is_read(tmp_path, stated):
    """Reading its central directory grew the process by 163 MiB; the end records tell it in a few bytes.
    zipfile believes the zip64 record over the classic one, so the check does too."""
    model = zip_of_empty_entries(tmp_path / "model.keras", 300_000, stated)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidModel, match=r"is a zip of 300000 entries in \d+ bytes of directory"):
            resolve_model(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_the_entry_count_alone_refuses(tmp_path):
    model = zip_of_empty_entries(tmp_path / "model.keras", MAX_ARCHIVE_ENTRIES + 1)
    with pytest.raises(InvalidModel, match=f"is a zip of {MAX_ARCHIVE_ENTRIES + 1} entries"):
        resolve_model(model)


def test_an_end_record_without_its_directory_is_no_model(tmp_path):
    """zipfile finds the end record, then no directory where it says: one line, not BadZipFile's traceback."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"xxxx" + END.pack(b"PK\x05\x06", 0, 0, 5, 5, 255, 0, 0))
    with pytest.raises(InvalidModel, match="is not a model trtkit reads"):
        resolve_model(model)
