"""Stage: download the wheels the GPU host lacks and cut them into pieces of at most 60 MB, one ignored folder each.

Run on a machine that reaches the package registry (any Python; pip downloads for the host's Python 3.12 /
manylinux x86-64):

    python -m tools.gpu_check.stage                 # -> .gpu_wheels/download/*.whl, .gpu_wheels/p01 ... p05
    python -m tools.gpu_check.stage --no_download   # only cut again what .gpu_wheels/download holds

It prints one line per piece folder (`p01  59,738,144 bytes  1 part`); docs/gpu-check.md gives the device calls
that carry them. `.gpu_wheels/` is git-ignored: never commit it.
"""
import argparse
import os
import subprocess
import sys

from tools.gpu_check import pieces

# What the GPU host (its image 'cuda', /work/.library/device/KINDS.md) lacks for the trainer, Python 3.12.
# Its list has numpy 2.5, Pillow, absl-py, h5py, ml-dtypes, rich (markdown-it-py, mdurl, pygments), packaging,
# typing-extensions, requests, setuptools, six, wrapt, grpcio, flatbuffers, opt-einsum, tensorboard, protobuf,
# tqdm and matplotlib: not carried, except protobuf (below).
WHEELS = {
    # tensorflow-cpu: the trainer's tf.data input, export and evaluation; the CPU build (no CUDA libraries: the
    # model runs on torch); it provides the `tensorflow` module. Its dependencies the host lacks:
    "tensorflow-cpu": "2.21.0",
    "astunparse": "1.6.3",
    "gast": "0.7.0",
    "google-pasta": "0.2.0",
    "termcolor": "3.3.0",
    # The host has a protobuf of unknown version; TF 2.21's generated code needs >=6.31.1,<8 at run time, and this
    # one (0.3 MB) shadows the host's for the check's processes only.
    "protobuf": "6.33.6",
    # Keras 3.15 and what it needs beyond the host's list.
    "keras": "3.15.1",
    "namex": "0.1.0",
    "optree": "0.20.0",
    # The renderer's pinned version (setup.py).
    "captcha": "0.7.0",
    # Installed only if the host's ml_dtypes is outside TF 2.21's range (>=0.5.1,<1.0): run.py checks first.
    "ml-dtypes": "0.5.4",
}
# Left out on purpose: libclang (25 MB; a TF build-time requirement, never imported at run time), h5py (the host's is
# used; TF's <3.15 pin matters only for pip's resolver), apache-beam and its ~30 dependencies (a sixth piece, one more
# device call: run.py renders with the project's own renderer instead).
GROUPS = {"ml-dtypes": "ml_dtypes_fallback"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
DEFAULT_DEST = ".gpu_wheels"


def download_command(wheels, dest, python=sys.executable):
    cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "--dest", dest]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    return cmd + ["%s==%s" % (name, version) for name, version in wheels.items()]


def project_name(wheel_file):
    """'google_pasta-0.2.0-py3-none-any.whl' -> 'google-pasta' (PEP 503 normalised)."""
    return wheel_file.split("-", 1)[0].lower().replace("_", "-").replace(".", "-")


def stage(dest=DEFAULT_DEST, download=True, max_piece_bytes=pieces.MAX_PIECE_BYTES, wheels=None):
    wheels = WHEELS if wheels is None else wheels
    download_dir = os.path.join(dest, "download")
    os.makedirs(download_dir, exist_ok=True)
    if download:
        subprocess.run(download_command(wheels, download_dir), check=True)
    files = sorted(f for f in os.listdir(download_dir) if f.endswith(".whl"))
    by_name = {}
    for f in files:
        by_name.setdefault(project_name(f), []).append(f)
    missing = sorted(set(wheels) - set(by_name))
    extra = sorted(set(by_name) - set(wheels))
    doubles = sorted(n for n, fs in by_name.items() if len(fs) > 1)
    if missing or extra or doubles:
        raise SystemExit("error: %s holds missing %s, unexpected %s, several versions of %s" % (
            download_dir, missing, extra, doubles))
    groups = {f: GROUPS.get(project_name(f), "always") for f in files}
    return pieces.split([os.path.join(download_dir, f) for f in files], dest, max_piece_bytes, groups)


def build_parser() -> argparse.ArgumentParser:
    """This command's flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=DEFAULT_DEST, help="ignored folder for download/ and the pNN pieces")
    parser.add_argument("--no_download", action="store_true", help="cut what DEST/download holds")
    parser.add_argument("--max_piece_mb", type=float, default=pieces.MAX_PIECE_BYTES / 1e6)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    manifest = stage(args.dest, not args.no_download, int(args.max_piece_mb * 1e6))
    total = sum(f["size"] for f in manifest["files"])
    for f in manifest["files"]:
        print("%-70s %12s bytes  %d part(s)  %s" % (f["file"], format(f["size"], ","), len(f["parts"]), f["group"]))
    for p in manifest["pieces"]:
        print("%s  %12s bytes  %d part(s)" % (p["folder"], format(p["bytes"], ","), p["parts"]))
    print("%d wheels, %s bytes, in %d pieces under %s" % (len(manifest["files"]), format(total, ","),
                                                         len(manifest["pieces"]), args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
