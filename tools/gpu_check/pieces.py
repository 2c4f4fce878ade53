"""Splits files into pieces of at most a size, one folder per piece, and reassembles them, checking sha256.

A device call carries at most 64 MiB, so the wheels the GPU host lacks travel as pieces of at most 60 MB, each in its
own git-ignored folder (`.gpu_wheels/p01/`, `p02/`, ...): a call carries one folder, and the machine keeps the
folders earlier calls left while it stays warm. Every piece folder holds a copy of `manifest.json`:

    {"format": 1, "max_piece_bytes": 60000000,
     "files": [{"file": "keras-3.15.1-py3-none-any.whl", "size": 2398595, "sha256": "...", "group": "always",
                "parts": [{"piece": "p05", "name": "keras-3.15.1-py3-none-any.whl.part00",
                           "offset": 0, "size": 2398595, "sha256": "..."}]}],
     "pieces": [{"folder": "p05", "bytes": 42000000, "parts": 11}]}

    python -c "from tools.gpu_check import pieces; print(pieces.status('.gpu_wheels'))"
"""
import hashlib
import json
import os
import shutil

FORMAT = 1
MANIFEST = "manifest.json"
MAX_PIECE_BYTES = 60_000_000  # 60 MB; a call carries 64 MiB = 67.1 MB, the working tree included
_CHUNK = 1 << 20


class PieceError(Exception):
    """A piece is missing, has the wrong size or sha256, or the manifests disagree: one line, naming it."""


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def piece_folder(number):
    return "p%02d" % number


def plan(files, max_piece_bytes=MAX_PIECE_BYTES):
    """[(path, size)] -> the manifest's `files` entries without sha256s: big files cut into parts of at most
    `max_piece_bytes` (leaving room for the manifest), packed in order into as few pieces as first-fit allows."""
    room = max_piece_bytes - 256 * 1024  # the manifest copy in every folder
    if room <= 0:
        raise ValueError("max_piece_bytes %d leaves no room beside the manifest" % max_piece_bytes)
    parts = []  # (file index, offset, size)
    entries = []
    for i, (path, size) in enumerate(sorted(files, key=lambda f: -f[1])):  # biggest first: fewer pieces
        entries.append({"file": os.path.basename(path), "size": size, "parts": [], "_path": path})
        offset = 0
        while True:
            n = min(room, size - offset)
            parts.append((i, offset, n))
            offset += n
            if offset >= size:
                break
    loads = []  # bytes in each piece so far
    for i, offset, n in parts:
        for k, load in enumerate(loads):
            if load + n <= room:
                break
        else:
            k = len(loads)
            loads.append(0)
        loads[k] += n
        entry = entries[i]
        entry["parts"].append({"piece": piece_folder(k + 1),
                               "name": "%s.part%02d" % (entry["file"], len(entry["parts"])),
                               "offset": offset, "size": n})
    return entries


def split(files, out_dir, max_piece_bytes=MAX_PIECE_BYTES, groups=None):
    """Cuts `files` (paths) into piece folders under `out_dir` (emptied of old pieces first) and writes the manifest
    into each; `groups` maps a file's base name to its install group (default "always"). Returns the manifest."""
    groups = groups or {}
    names = [os.path.basename(p) for p in files]
    if len(set(names)) != len(names):
        raise ValueError("two files share a name: %s" % sorted(n for n in names if names.count(n) > 1))
    entries = plan([(p, os.path.getsize(p)) for p in files], max_piece_bytes)
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):  # stale pieces of an earlier stage
        if name.startswith("p") and name[1:].isdigit():
            shutil.rmtree(os.path.join(out_dir, name))
    for entry in entries:
        path = entry.pop("_path")
        entry["sha256"] = sha256_file(path)
        entry["group"] = groups.get(entry["file"], "always")
        with open(path, "rb") as src:
            for part in entry["parts"]:
                folder = os.path.join(out_dir, part["piece"])
                os.makedirs(folder, exist_ok=True)
                src.seek(part["offset"])
                digest, left = hashlib.sha256(), part["size"]
                with open(os.path.join(folder, part["name"]), "wb") as dst:
                    while left:
                        chunk = src.read(min(_CHUNK, left))
                        if not chunk:
                            raise ValueError("%s shrank while it was split" % path)
                        digest.update(chunk)
                        dst.write(chunk)
                        left -= len(chunk)
                part["sha256"] = digest.hexdigest()
    pieces = {}
    for entry in entries:
        for part in entry["parts"]:
            p = pieces.setdefault(part["piece"], {"folder": part["piece"], "bytes": 0, "parts": 0})
            p["bytes"] += part["size"]
            p["parts"] += 1
    manifest = {"format": FORMAT, "max_piece_bytes": max_piece_bytes,
                "files": [{k: e[k] for k in ("file", "size", "sha256", "group", "parts")} for e in entries],
                "pieces": sorted(pieces.values(), key=lambda p: p["folder"])}
    text = json.dumps(manifest, indent=1)
    for p in manifest["pieces"]:
        with open(os.path.join(out_dir, p["folder"], MANIFEST), "w") as f:
            f.write(text)
        total = sum(os.path.getsize(os.path.join(out_dir, p["folder"], n))
                    for n in os.listdir(os.path.join(out_dir, p["folder"])))
        if total > max_piece_bytes:
            raise ValueError("piece %s holds %d bytes, over %d" % (p["folder"], total, max_piece_bytes))
    return manifest


def load_manifest(pieces_dir):
    """The manifest, from whichever piece folders are present; PieceError if none holds one or two differ."""
    found = {}
    if os.path.isdir(pieces_dir):
        for name in sorted(os.listdir(pieces_dir)):
            path = os.path.join(pieces_dir, name, MANIFEST)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    found[name] = f.read()
    if not found:
        raise PieceError("no piece folder with a %s under %s: carry the pieces (.gpu_wheels/pNN) first" %
                         (MANIFEST, pieces_dir))
    if len(set(found.values())) > 1:
        raise PieceError("the manifests in %s differ (%s): pieces of two different stages are mixed; carry the "
                         "pieces of one stage" % (pieces_dir, ", ".join(sorted(found))))
    manifest = json.loads(next(iter(found.values())))
    if manifest.get("format") != FORMAT:
        raise PieceError("manifest format %r, this reads %d" % (manifest.get("format"), FORMAT))
    return manifest


def status(pieces_dir):
    """{"present": [...], "missing": [...], "total": n} of the manifest's piece folders, by presence of every part
    at its size (sha256 is checked by reassemble). Raises PieceError like load_manifest."""
    manifest = load_manifest(pieces_dir)
    complete = {p["folder"] for p in manifest["pieces"]}
    for entry in manifest["files"]:
        for part in entry["parts"]:
            path = os.path.join(pieces_dir, part["piece"], part["name"])
            if not os.path.isfile(path) or os.path.getsize(path) != part["size"]:
                complete.discard(part["piece"])
    folders = [p["folder"] for p in manifest["pieces"]]
    return {"present": [f for f in folders if f in complete], "missing": [f for f in folders if f not in complete],
            "total": len(folders)}


def reassemble(pieces_dir, out_dir, groups=None):
    """Joins every file of the manifest (only those of `groups`, if given) into `out_dir`, checking each part's and
    each whole file's size and sha256; returns their paths. PieceError, naming the first bad or missing part or
    file, on any mismatch; a file that fails is removed, so nothing unchecked is left to install."""
    manifest = load_manifest(pieces_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for entry in manifest["files"]:
        if groups is not None and entry["group"] not in groups:
            continue
        target = os.path.join(out_dir, entry["file"])
        whole = hashlib.sha256()
        try:
            with open(target + ".tmp", "wb") as dst:
                for part in entry["parts"]:
                    path = os.path.join(pieces_dir, part["piece"], part["name"])
                    if not os.path.isfile(path):
                        raise PieceError("piece %s is missing %s: carry .gpu_wheels/%s again" % (
                            part["piece"], part["name"], part["piece"]))
                    digest = hashlib.sha256()
                    with open(path, "rb") as src:
                        while chunk := src.read(_CHUNK):
                            digest.update(chunk)
                            whole.update(chunk)
                            dst.write(chunk)
                    if os.path.getsize(path) != part["size"] or digest.hexdigest() != part["sha256"]:
                        raise PieceError("checksum mismatch in piece %s: %s has sha256 %s and %d bytes, the "
                                         "manifest lists %s and %d; stage again or carry .gpu_wheels/%s again" % (
                                             part["piece"], part["name"], digest.hexdigest(), os.path.getsize(path),
                                             part["sha256"], part["size"], part["piece"]))
            if whole.hexdigest() != entry["sha256"]:
                raise PieceError("checksum mismatch: %s reassembled has sha256 %s, the manifest lists %s" % (
                    entry["file"], whole.hexdigest(), entry["sha256"]))
        except BaseException:
            if os.path.exists(target + ".tmp"):
                os.remove(target + ".tmp")
            raise
        os.replace(target + ".tmp", target)
        paths.append(target)
    return paths
