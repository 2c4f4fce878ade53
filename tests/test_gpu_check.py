"""tools/gpu_check: pieces, manifest and checksums on small fake files (no downloads, no TensorFlow), and the
run entry point's refusal of a bad piece."""
import json
import os

import pytest

from tools.gpu_check import pieces, run, stage


def _files(tmp_path, sizes):
    paths = []
    for i, size in enumerate(sizes):
        path = tmp_path / "src" / ("w%d-1.0-py3-none-any.whl" % i)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(size))
        paths.append(str(path))
    return paths


MAX = 300 * 1024  # small pieces: 44 KiB of room per piece beside the manifest's reserved 256 KiB


def test_split_and_reassemble_round_trip(tmp_path):
    paths = _files(tmp_path, [200_000, 30_000, 5_000, 1])
    manifest = pieces.split(paths, str(tmp_path / "pieces"), MAX, groups={"w3-1.0-py3-none-any.whl": "extra"})
    room = MAX - 256 * 1024
    assert len(manifest["files"][0]["parts"]) == -(-200_000 // room)  # the big file in ceil(size / room) parts
    folders = sorted(os.listdir(tmp_path / "pieces"))
    assert folders == [p["folder"] for p in manifest["pieces"]]
    for folder in folders:  # each folder under the limit, with its own copy of the manifest
        names = os.listdir(tmp_path / "pieces" / folder)
        assert pieces.MANIFEST in names
        assert sum(os.path.getsize(tmp_path / "pieces" / folder / n) for n in names) <= MAX
        assert json.loads((tmp_path / "pieces" / folder / pieces.MANIFEST).read_text()) == manifest
    out = pieces.reassemble(str(tmp_path / "pieces"), str(tmp_path / "out"))
    assert sorted(map(os.path.basename, out)) == sorted(map(os.path.basename, paths))
    for path in paths:
        assert (tmp_path / "out" / os.path.basename(path)).read_bytes() == open(path, "rb").read()
    assert pieces.status(str(tmp_path / "pieces")) == {"present": folders, "missing": [], "total": len(folders)}
    only = pieces.reassemble(str(tmp_path / "pieces"), str(tmp_path / "out2"), groups={"always"})
    assert "w3-1.0-py3-none-any.whl" not in map(os.path.basename, only)


def test_split_packs_small_files_beside_the_big_ones_tail(tmp_path):
    room = MAX - 256 * 1024
    paths = _files(tmp_path, [2 * room + 100, 2_000, 3_000])
    manifest = pieces.split(paths, str(tmp_path / "pieces"), MAX)
    assert len(manifest["pieces"]) == 3  # two full parts, then the tail and both small files together
    assert manifest["pieces"][-1]["parts"] == 3


def test_a_changed_piece_is_refused_and_nothing_is_left(tmp_path):
    paths = _files(tmp_path, [100_000])
    manifest = pieces.split(paths, str(tmp_path / "pieces"), MAX)
    part = manifest["files"][0]["parts"][1]
    path = tmp_path / "pieces" / part["piece"] / part["name"]
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    with pytest.raises(pieces.PieceError, match="checksum mismatch in piece %s: %s" % (part["piece"], part["name"])):
        pieces.reassemble(str(tmp_path / "pieces"), str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []  # the half-joined wheel is removed


def test_a_missing_piece_is_named(tmp_path):
    paths = _files(tmp_path, [100_000])
    pieces.split(paths, str(tmp_path / "pieces"), MAX)
    os.remove(tmp_path / "pieces" / "p02" / "w0-1.0-py3-none-any.whl.part01")
    state = pieces.status(str(tmp_path / "pieces"))
    assert "p02" in state["missing"] and "p01" in state["present"]
    with pytest.raises(pieces.PieceError, match="piece p02 is missing"):
        pieces.reassemble(str(tmp_path / "pieces"), str(tmp_path / "out"))


def test_pieces_of_two_stages_are_refused(tmp_path):
    pieces.split(_files(tmp_path, [100_000]), str(tmp_path / "pieces"), MAX)
    manifest_path = tmp_path / "pieces" / "p02" / pieces.MANIFEST
    manifest_path.write_text(manifest_path.read_text().replace('"format": 1', '"format": 1, "x": 0'))
    with pytest.raises(pieces.PieceError, match="manifests in .* differ"):
        pieces.load_manifest(str(tmp_path / "pieces"))
    with pytest.raises(pieces.PieceError, match="no piece folder"):
        pieces.load_manifest(str(tmp_path / "nothing"))


def test_split_refuses_two_files_of_one_name(tmp_path):
    a, b = tmp_path / "a" / "x.whl", tmp_path / "b" / "x.whl"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"1")
    with pytest.raises(ValueError, match="share a name"):
        pieces.split([str(a), str(b)], str(tmp_path / "pieces"), MAX)


def test_run_refuses_a_bad_piece_with_one_error_line(tmp_path, capsys):
    paths = _files(tmp_path, [50_000])
    manifest = pieces.split(paths, str(tmp_path / "pieces"), MAX)
    part = manifest["files"][0]["parts"][0]
    path = tmp_path / "pieces" / part["piece"] / part["name"]
    path.write_bytes(b"\0" * part["size"])
    argv = ["--pieces_dir", str(tmp_path / "pieces"), "--site", str(tmp_path / "site"), "--work",
            str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    assert run.main(argv) == 1
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["error"].startswith("checksum mismatch in piece p01")
    errors = [l for l in (tmp_path / "out" / "gpu_check.log").read_text().splitlines() if "error:" in l]
    assert len(errors) == 1
    assert not (tmp_path / "site").exists()  # nothing installed
    assert run.main(["--status", "--pieces_dir", str(tmp_path / "pieces")]) == 0
    assert "pieces present: p01 p02" in capsys.readouterr().out


def test_stage_download_command_and_names():
    cmd = stage.download_command({"keras": "3.15.1"}, "d")
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and "--only-binary=:all:" in cmd
    assert "keras==3.15.1" in cmd and "manylinux_2_27_x86_64" in cmd
    assert stage.project_name("google_pasta-0.2.0-py3-none-any.whl") == "google-pasta"
    assert stage.project_name("tensorflow_cpu-2.21.0-cp312-cp312-manylinux_2_27_x86_64.whl") == "tensorflow-cpu"
    assert set(stage.GROUPS) <= set(stage.WHEELS)
