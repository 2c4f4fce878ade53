"""The serving benchmark: the reader in-process (one image at a time, and batched), ddddocr in-process on the same
images, and the HTTP service under a bounded load (localhost only, a fixed request count and time limit) at
concurrency 1 and 8, each row bounded by --count reads and --time_limit seconds. Prints one Markdown table (docs/
benchmarks.md holds its figures); asserts nothing.

    python -m captcha_break.benchmark --model_dir=runs/mine --images=../shared/real/swust/2019-12 --count=500
"""
import argparse
import http.client
import os
import re
import subprocess
import sys
import threading
import time

from captcha_break import command
from captcha_break.label import list_images
from captcha_break.reader import Reader


def _percentiles(latencies):
    ordered = sorted(latencies)
    return ordered[len(ordered) // 2] * 1e3, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3


def in_process(read, images, count, time_limit):
    """(images/s, p50 ms, p99 ms) of read(bytes) called one image at a time, `count` times at most."""
    latencies, start = [], time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        read(images[i % len(images)])
        latencies.append(time.perf_counter() - t)
        if t - start > time_limit:
            break
    return (len(latencies) / (time.perf_counter() - start), *_percentiles(latencies))


def batched(reader, images, count, batch=64):
    start, done = time.perf_counter(), 0
    while done < count:
        done += len(reader.read_batch([images[(done + i) % len(images)] for i in range(batch)]))
    return done / (time.perf_counter() - start)


def over_http(port, images, count, concurrency, time_limit):
    """(requests/s, p50 ms, p99 ms, failed) of `count` POST /read of raw bytes from `concurrency` kept-alive
    connections on 127.0.0.1, stopping at time_limit seconds."""
    latencies, failed, lock = [], [0], threading.Lock()
    next_request = iter(range(count))
    deadline = time.perf_counter() + time_limit

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in next_request:
            if time.perf_counter() > deadline:
                break
            t = time.perf_counter()
            connection.request("POST", "/read", images[i % len(images)], {"Content-Type": "image/png"})
            answer = connection.getresponse()
            answer.read()
            with lock:
                latencies.append(time.perf_counter() - t)
                failed[0] += answer.status != 200
        connection.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (len(latencies) / (time.perf_counter() - start), *_percentiles(latencies), failed[0])


def run_benchmark(model_dir, folder, count=500, time_limit=60.0, ddddocr=True, out=print):
    paths = list_images(folder)
    images = [open(p, "rb").read() for p in paths]
    reader = Reader(model_dir)
    reader.read(images[0])  # onnxruntime's first call allocates
    rows = [("reader, in-process, 1 image per call", *in_process(reader.read, images, count, time_limit))]
    rows.append(("reader, in-process, batches of 64", batched(reader, images, count), None, None))
    if ddddocr:
        try:
            import ddddocr as dddd
        except ImportError:
            out("ddddocr is not installed (pip install -e '.[peers]'): its row is left out")
        else:
            ocr = dddd.DdddOcr(show_ad=False)
            ocr.classification(images[0])
            rows.append(("ddddocr 1 image per call, in-process", *in_process(ocr.classification, images, count,
                                                                              time_limit)))
    server = subprocess.Popen([sys.executable, "-m", "captcha_break.serve", f"--model_dir={model_dir}", "--port=0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"127\.0\.0\.1:([0-9]+)", server.stdout.readline()).group(1))
        for concurrency in (1, 8):
            rate, p50, p99, failed = over_http(port, images, count, concurrency, time_limit)
            rows.append((f"service, POST /read raw bytes, concurrency {concurrency}"
                         + (f" ({failed} failed)" if failed else ""), rate, p50, p99))
    finally:
        server.terminate()
        server.wait(timeout=30)
    out(f"{len(images)} images of {folder}, up to {count} reads per row, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    out("")
    out("| reader | images/s | p50 ms | p99 ms |")
    out("| --- | --- | --- | --- |")
    for name, rate, p50, p99 in rows:
        out(f"| {name} | {rate:.0f} | {'' if p50 is None else f'{p50:.1f}'} | {'' if p99 is None else f'{p99:.1f}'} |")
    return rows


def build_parser():
    """The command line: model_dir (trainer.export --format=onnx), the images, the bounds of each row."""
    parser = command.parser("benchmark", "Times the ONNX reader, ddddocr and the HTTP service.")
    parser.add_argument("--images", required=True, help="Folder of captcha images to read.")
    parser.add_argument("--count", type=int, default=500, help="Reads per row at most.")
    parser.add_argument("--time_limit", type=float, default=60.0, help="Seconds per row at most.")
    parser.add_argument("--ddddocr", action=argparse.BooleanOptionalAction, default=True,
                        help="Also time ddddocr in-process on the same images (pip install -e '.[peers]').")
    return parser


def main(argv=None):
    """`python -m captcha_break.benchmark`."""
    args = build_parser().parse_args(argv)
    with command.exit_on_error():  # Ctrl-C too: one line, exit status 130
        run_benchmark(args.model_dir, args.images, args.count, args.time_limit, args.ddddocr)


if __name__ == "__main__":
    main()
