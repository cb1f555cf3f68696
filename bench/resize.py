"""Our image processor against naive Pillow and pyvips: time, peak memory, output bytes and resize quality.

    .venv/bin/python bench/resize.py [--photos 3] [--repeat 3] [--vips-threads 1] [--check]

(or `make bench`, which installs pyvips first). One run, one machine, the same in-memory inputs for all three:

- ours:    ``offload.imaging.make_variants`` (JPEG draft / WebP shrink-on-load, a cascade with the cheapest
           indistinguishable filter, rotate after resizing);
- naive:   Pillow as the tutorials write it: open, ``exif_transpose``, every variant resized (LANCZOS) from the full
           image, saved with the same qualities and Pillow's other encoder defaults (WebP method 4);
- pyvips:  ``thumbnail_buffer`` per variant (shrink-on-load, auto-rotate), saved with our encoder settings.

Every pipeline makes the same outputs: thumb (320 square), medium (960) and large (1920), each as WebP and JPEG.
Peak memory is measured per pipeline and input in a fresh process (this script with a hidden ``--one``), so peaks
do not mix. Ends with the issue's goals as PASS/FAIL lines; exit status 1 on a FAIL only with ``--check``.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from PIL import Image

    from offload.config import VariantSpec

PIPELINES = ("ours", "naive", "pyvips")
LABELS = {"ours": "ours", "naive": "naive Pillow", "pyvips": "pyvips"}
MAIN = "12 MP JPEG"  # the input the speed goals are stated for
KINDS = (MAIN, "24 MP JPEG", "24 MP WebP")
MIB = 1024 * 1024

# The goals.
GOAL_SPEEDUP = 3.0  # naive / ours, at least
GOAL_VS_VIPS = 1.5  # ours / pyvips, at most
GOAL_PSNR = 38.0  # dB, ours' large vs naive's large, at least
GOAL_PEAK_MIB = {MAIN: 200, "24 MP JPEG": 300, "24 MP WebP": 300}


class Output(NamedTuple):
    variant: str
    format: str
    width: int
    height: int
    data: bytes


# --- the three pipelines ---------------------------------------------------------------------------------------------


def variant_specs() -> tuple[VariantSpec, ...]:
    # offload.config, not imaging: the pyvips child should not pay for importing Pillow.
    from offload.config import parse_variants

    return parse_variants(None)


def run_ours(data: bytes, laps: list[dict[str, float]] | None = None) -> list[Output]:
    from offload import imaging

    processed = imaging.make_variants(data)
    if laps is not None:
        laps.append(processed.timings_ms)
    return [Output(v.name, v.format, v.width, v.height, v.data) for v in processed.variants]


def naive_images(data: bytes) -> dict[str, Image.Image]:
    """Each variant resized from the full, upright image: what the bench compares resize quality against."""
    from PIL import Image, ImageOps

    from offload.imaging import fit_within, square_side

    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    out = {}
    for spec in variant_specs():
        if spec.square:
            side = square_side(im.width, im.height, spec.size)
            out[spec.name] = ImageOps.fit(im, (side, side), Image.Resampling.LANCZOS)
        else:
            out[spec.name] = im.resize(fit_within(im.width, im.height, spec.size), Image.Resampling.LANCZOS)
    return out


def run_naive(data: bytes) -> list[Output]:
    from offload import imaging

    outputs = []
    for name, im in naive_images(data).items():
        # The same quality numbers as ours; everything else is Pillow's default (WebP method 4), as naive code has it.
        for fmt, pillow_format, options in (
            ("webp", "WEBP", {"quality": imaging.ENCODERS["webp"].options["quality"]}),
            ("jpeg", "JPEG", {"quality": imaging.ENCODERS["jpeg"].options["quality"]}),
        ):
            buf = io.BytesIO()
            im.save(buf, pillow_format, **options)  # savers take exif/icc only when passed: no metadata
            outputs.append(Output(name, fmt, im.width, im.height, buf.getvalue()))
    return outputs


def vips() -> Any:
    import pyvips  # VIPS_CONCURRENCY is set in main() before this first import

    # No operation cache: every repeat must do the work, as a one-shot function invocation would.
    pyvips.cache_set_max(0)
    return pyvips


def vips_thumbnail(data: bytes, spec: VariantSpec) -> Any:
    pyvips = vips()
    if spec.square:
        return pyvips.Image.thumbnail_buffer(data, spec.size, height=spec.size, crop="centre", size="down")
    return pyvips.Image.thumbnail_buffer(data, spec.size, size="down")  # fits a size x size box, never upscales


def run_pyvips(data: bytes) -> list[Output]:
    from offload import imaging

    pyvips = vips()
    keep = pyvips.enums.ForeignKeep.NONE  # strip everything (``strip=True`` is deprecated in libvips 8.15+)
    outputs = []
    for spec in variant_specs():
        # libvips is lazy: without copy_memory the second save would decode and shrink the source all over again.
        im = vips_thumbnail(data, spec).copy_memory()
        # Our encoder settings exactly (``effort`` is libwebp's method), so only decode and resize differ.
        webp_options, jpeg_options = imaging.ENCODERS["webp"].options, imaging.ENCODERS["jpeg"].options
        webp = im.webpsave_buffer(Q=webp_options["quality"], effort=webp_options["method"], keep=keep)
        jpeg = im.jpegsave_buffer(Q=jpeg_options["quality"], keep=keep)
        outputs += [
            Output(spec.name, "webp", im.width, im.height, webp),
            Output(spec.name, "jpeg", im.width, im.height, jpeg),
        ]
    return outputs


RUNNERS: dict[str, Callable[[bytes], list[Output]]] = {"ours": run_ours, "naive": run_naive, "pyvips": run_pyvips}


# --- resize quality --------------------------------------------------------------------------------------------------


def large_spec() -> VariantSpec:
    return max((s for s in variant_specs() if not s.square), key=lambda s: s.size)


def ours_large(data: bytes) -> Image.Image:
    """Our large variant before lossy encoding: the JPEG encoder swapped for uncompressed PNG for one call."""
    from PIL import Image

    from offload import imaging

    saved = imaging.ENCODERS["jpeg"]
    imaging.ENCODERS["jpeg"] = imaging.Encoder("PNG", "image/png", "png", {"compress_level": 0})
    try:
        processed = imaging.make_variants(data, imaging.Options(formats=("jpeg",)))
    finally:
        imaging.ENCODERS["jpeg"] = saved
    large = next(v for v in processed.variants if v.name == large_spec().name)
    im = Image.open(io.BytesIO(large.data))
    im.load()
    return im


def vips_large(data: bytes) -> Image.Image:
    from PIL import Image

    im = vips_thumbnail(data, large_spec())
    if im.bands != 3 or im.format != "uchar":  # frombytes below assumes 8-bit RGB
        raise ValueError(f"pyvips gave {im.bands} bands of {im.format}")
    return Image.frombytes("RGB", (im.width, im.height), im.write_to_memory())


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB over R, G and B (NaN when the sizes differ)."""
    from PIL import ImageChops, ImageStat

    if a.size != b.size:
        return math.nan
    stat = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB")))
    mse = sum(stat.sum2) / (3 * a.width * a.height)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


# --- peak memory, in a fresh process per pipeline and input ----------------------------------------------------------


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def one(pipeline: str, path: str) -> int:
    """Child mode: import what the pipeline needs, read the input, process it once, report RSS as JSON."""
    if pipeline == "pyvips":
        vips()
    else:
        from offload import imaging  # noqa: F401 - ours needs it, naive uses its size arithmetic
    variant_specs()
    data = Path(path).read_bytes()
    baseline = proc_status_kib("VmRSS")
    outputs = RUNNERS[pipeline](data)
    peak = proc_status_kib("VmHWM")
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "outputs": len(outputs)}))
    return 0


def measure_memory(pipeline: str, path: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, __file__, "--one", pipeline, str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{pipeline} child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report -----------------------------------------------------------------------------------------------------------


def machine() -> str:
    import PIL
    from PIL import features

    pyvips = vips()
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    usable = len(os.sched_getaffinity(0))
    libvips = ".".join(str(pyvips.version(i)) for i in range(3))
    return (
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} · Python {platform.python_version()} · "
        f"Pillow {PIL.__version__} (libwebp {features.version('webp')}, libjpeg-turbo "
        f"{features.version('libjpeg_turbo')}) · pyvips {pyvips.__version__} / libvips {libvips} · "
        f"{cpu}, {os.cpu_count()} cores ({usable} usable) · {platform.system()} {platform.machine()}"
    )


def revision() -> str:
    """The commit measured, and whether the processor's code differs from it (the numbers then describe the edit)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "offload"], capture_output=True, text=True, check=False
    )
    if head.returncode != 0:
        return "boardsite (not a git checkout)"
    return f"boardsite {head.stdout.strip()}" + (" + uncommitted changes in offload/" if dirty.stdout.strip() else "")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def mib(kib: int) -> float:
    return kib * 1024 / MIB


def fmt_psnr(value: float) -> str:
    return "n/a (sizes differ)" if math.isnan(value) else f"{value:.1f} dB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=3, help="distinct 12 MP JPEGs (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each photo after one warm-up (default 3)")
    parser.add_argument(
        "--vips-threads", type=int, default=1, help="libvips worker threads (default 1: a ~1 vCPU Lambda, like ours)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal FAILs")
    parser.add_argument("--one", nargs=2, metavar=("PIPELINE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Before pyvips is first imported (libvips reads it when it starts); the children inherit it.
    os.environ["VIPS_CONCURRENCY"] = str(args.vips_threads)
    if args.one:
        return one(*args.one)

    from bench.photos import photo

    print(machine())
    print(revision())
    print(f"load average at start: {load_average()}")
    inputs: dict[str, list[bytes]] = {
        MAIN: [photo(12, seed) for seed in range(1, args.photos + 1)],
        "24 MP JPEG": [photo(24, 101)],
        "24 MP WebP": [photo(24, 102, fmt="WEBP")],
    }
    pyvips = vips()
    print(
        f"pyvips threads: VIPS_CONCURRENCY={os.environ['VIPS_CONCURRENCY']} (libvips reports "
        f"{pyvips.concurrency_get()}); Pillow and ours: 1 thread"
    )
    for kind, datas in inputs.items():
        size = vips().Image.new_from_buffer(datas[0], "")
        print(
            f"input {kind}: {len(datas)} x {size.width}x{size.height} stored, EXIF orientation 6 + GPS, "
            f"{statistics.mean(map(len, datas)) / 1e6:.1f} MB avg"
        )
    print(
        f"variants: {', '.join(f'{s.name}={s.size}' + (' square' if s.square else '') for s in variant_specs())}; "
        "formats webp (q80) + jpeg (q85); each run makes all 6 outputs"
    )

    # Time: pipelines interleaved photo by photo, so load from elsewhere on the machine hits all three alike.
    times: dict[str, dict[str, list[float]]] = {kind: {p: [] for p in PIPELINES} for kind in KINDS}
    laps: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        for p in PIPELINES:
            RUNNERS[p](inputs[kind][0])  # warm-up: imports, codec initialisation
        for _ in range(args.repeat):
            for data in inputs[kind]:
                for p in PIPELINES:
                    started = time.perf_counter()
                    if p == "ours":
                        run_ours(data, laps[kind])
                    else:
                        RUNNERS[p](data)
                    times[kind][p].append((time.perf_counter() - started) * 1000)
    median = {kind: {p: statistics.median(times[kind][p]) for p in PIPELINES} for kind in KINDS}

    print(
        f"\nTime per image, median ms of {args.photos} x {args.repeat} ({MAIN}) / 1 x {args.repeat} (24 MP), "
        "spread = (max - min) / median"
    )
    print(f"{'':<22}" + "".join(f"{kind:>20}" for kind in KINDS))
    for p in PIPELINES:
        cells = []
        for kind in KINDS:
            runs = times[kind][p]
            spread = (max(runs) - min(runs)) / median[kind][p] * 100
            cells.append(f"{median[kind][p]:>11.0f} ms ±{spread:>3.0f}%")
        print(f"{LABELS[p]:<22}" + "".join(f"{c:>20}" for c in cells))
    print(f"{'naive / ours':<22}" + "".join(f"{median[k]['naive'] / median[k]['ours']:>19.2f}x" for k in KINDS))
    print(f"{'ours / pyvips':<22}" + "".join(f"{median[k]['ours'] / median[k]['pyvips']:>19.2f}x" for k in KINDS))
    print("\nours, median ms per stage (timings_ms; encode includes rotating the outputs upright)")
    stages = list(laps[MAIN][0])
    print(f"{'':<22}" + "".join(f"{kind:>20}" for kind in KINDS))
    for stage in stages:
        print(f"{stage:<22}" + "".join(f"{statistics.median(lap[stage] for lap in laps[k]):>20.0f}" for k in KINDS))

    # Output bytes, from one more run of each pipeline on the first 12 MP photo.
    outputs = {p: RUNNERS[p](inputs[MAIN][0]) for p in PIPELINES}
    print(f"\nOutput bytes, {MAIN} #1 (width x height per pipeline when they differ)")
    print(f"{'variant':<22}{'format':<8}" + "".join(f"{LABELS[p]:>16}" for p in PIPELINES))
    by_key = {p: {(o.variant, o.format): o for o in outputs[p]} for p in PIPELINES}
    mismatched = []
    for key, o in by_key["ours"].items():
        dims = {p: f"{by_key[p][key].width}x{by_key[p][key].height}" for p in PIPELINES if key in by_key[p]}
        if len(set(dims.values())) > 1 or len(dims) < len(PIPELINES):
            mismatched.append(f"{key[0]} {key[1]}: {dims}")
        cells = [f"{len(by_key[p][key].data):>16,}" if key in by_key[p] else f"{'missing':>16}" for p in PIPELINES]
        print(f"{o.variant + ' ' + f'{o.width}x{o.height}':<22}{o.format:<8}" + "".join(cells))
    totals = {p: sum(len(o.data) for o in outputs[p]) for p in PIPELINES}
    print(f"{'total':<30}" + "".join(f"{totals[p]:>16,}" for p in PIPELINES))
    for line in mismatched:
        print(f"  sizes differ: {line}")

    # Resize quality: the large variant before lossy encoding, against naive Pillow's.
    quality: dict[str, dict[str, float]] = {"ours": {}, "pyvips": {}}
    for kind in KINDS:
        reference = naive_images(inputs[kind][0])[large_spec().name]
        quality["ours"][kind] = psnr(ours_large(inputs[kind][0]), reference)
        quality["pyvips"][kind] = psnr(vips_large(inputs[kind][0]), reference)
    print(f"\nPSNR of the {large_spec().name} variant vs naive Pillow's, before encoding (first photo of each input)")
    print(f"{'':<22}" + "".join(f"{kind:>20}" for kind in KINDS))
    for p, values in quality.items():
        print(f"{LABELS[p]:<22}" + "".join(f"{fmt_psnr(values[k]):>20}" for k in KINDS))

    # Peak memory: one fresh process per pipeline and input, run one at a time.
    memory: dict[str, dict[str, dict[str, int]]] = {p: {} for p in PIPELINES}
    with tempfile.TemporaryDirectory(prefix="boardsite-bench-") as workdir:
        for kind in KINDS:
            # The input goes through a file: generating it in the child would count towards the child's peak.
            path = Path(workdir) / kind.replace(" ", "-")
            path.write_bytes(inputs[kind][0])
            for p in PIPELINES:
                memory[p][kind] = measure_memory(p, path)
    print(
        "\nPeak RSS (VmHWM) in a fresh process per pipeline and input, MiB; in brackets: RSS after imports and "
        "reading the input, before processing"
    )
    print(f"{'':<22}" + "".join(f"{kind:>20}" for kind in KINDS))
    for p in PIPELINES:
        cells = [f"{mib(memory[p][k]['peak_kib']):.0f} ({mib(memory[p][k]['baseline_kib']):.0f})" for k in KINDS]
        print(f"{LABELS[p]:<22}" + "".join(f"{c:>20}" for c in cells))
    print(f"load average at end: {load_average()}")

    # The same, as markdown for the README.
    print("\nMarkdown:\n")
    print(
        "| pipeline | "
        + " | ".join(f"{k}, ms" for k in KINDS)
        + " | "
        + " | ".join(f"{k}, peak MiB" for k in KINDS)
        + f" | {large_spec().name} PSNR vs naive ({MAIN}) |"
    )
    print("|---|" + "---:|" * (2 * len(KINDS) + 1))
    for p in PIPELINES:
        ms = [f"{median[k][p]:.0f}" for k in KINDS]
        peaks = [f"{mib(memory[p][k]['peak_kib']):.0f}" for k in KINDS]
        q = "reference" if p == "naive" else fmt_psnr(quality[p][MAIN])
        print(f"| {LABELS[p]} | " + " | ".join(ms + peaks) + f" | {q} |")
    print()
    print(f"| output ({MAIN} #1) | " + " | ".join(f"{LABELS[p]}, bytes" for p in PIPELINES) + " |")
    print("|---|" + "---:|" * len(PIPELINES))
    for key, o in by_key["ours"].items():
        cells = [f"{len(by_key[p][key].data):,}" if key in by_key[p] else "missing" for p in PIPELINES]
        print(f"| {o.variant} {o.width}x{o.height} {o.format} | " + " | ".join(cells) + " |")

    # The goals.
    goals = [
        (
            f"ours >= {GOAL_SPEEDUP:g}x faster than naive Pillow on the {MAIN}",
            median[MAIN]["naive"] / median[MAIN]["ours"] >= GOAL_SPEEDUP,
            f"{median[MAIN]['naive'] / median[MAIN]['ours']:.2f}x",
        ),
        (
            f"ours <= {GOAL_VS_VIPS:g}x pyvips' time on the {MAIN}",
            median[MAIN]["ours"] / median[MAIN]["pyvips"] <= GOAL_VS_VIPS,
            f"{median[MAIN]['ours'] / median[MAIN]['pyvips']:.2f}x",
        ),
    ]
    for kind in KINDS:  # the issue does not name an input for the PSNR goal: every input must meet it
        value = quality["ours"][kind]
        goals.append(
            (
                f"PSNR ours vs naive {large_spec().name} >= {GOAL_PSNR:g} dB on the {kind}",
                value >= GOAL_PSNR,
                fmt_psnr(value),
            )
        )
    for kind, limit in GOAL_PEAK_MIB.items():
        peak = mib(memory["ours"][kind]["peak_kib"])
        goals.append((f"ours peak RSS <= {limit} MB on the {kind}", peak <= limit, f"{peak:.0f} MiB"))
    print("\nGoals")
    for text, ok, value in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {text}: {value}")
    failed = sum(not ok for _, ok, _ in goals)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
