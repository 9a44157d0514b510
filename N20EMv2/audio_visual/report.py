#!/usr/bin/env python3
"""Collect a noise grid (run_noise_grid.py) into the paper's table and figure.

    python report.py results/noise_grid

Reads `<grid>/<system>/<condition>/summary_n20em_test.json` and writes
`<grid>/noise_table.csv` (columns system, noise_type, snr_db, COnPOff_f1, COnP_f1, COn_f1, COff_f1;
snr_db is a number or `clean`, F1 in 0..1), `<grid>/noise_table.md`, and `<grid>/noise_test.png`
(one panel per metric, F1 vs SNR, A vs AV, one colour per noise type, in the style of the paper's
noise_test.png).
"""
import argparse
import csv
import io
import json
import sys
from pathlib import Path

METRICS = ("COnPOff", "COnP", "COn", "COff")
COLUMNS = ["system", "noise_type", "snr_db"] + [f"{m}_f1" for m in METRICS]


def collect(grid: Path) -> list:
    rows = []
    for summary in sorted(grid.glob("*/**/summary_n20em_test.json")):
        relative = summary.parent.relative_to(grid).parts
        system, condition = relative[0], "/".join(relative[1:])
        stats = json.loads(summary.read_text())
        if condition == "clean":
            noise_type, snr = "clean", "clean"
        else:
            noise_type, snr_part = condition.split("/")
            snr = float(snr_part[len("SNR_"):-len("dB")])
        rows.append({"system": system, "noise_type": noise_type, "snr_db": snr,
                     **{f"{m}_f1": stats[f"{m}_f1"] for m in METRICS}})
    rows.sort(key=lambda r: (r["system"], r["noise_type"] != "clean", r["noise_type"],
                             -1e9 if r["snr_db"] == "clean" else r["snr_db"]))
    return rows


def write_table(rows, grid: Path):
    from svt.fileio import write_text_atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if k.endswith("_f1") else
                             (f"{v:g}" if isinstance(v, float) else v)) for k, v in row.items()})
    write_text_atomic(grid / "noise_table.csv", buffer.getvalue())
    lines = ["| system | noise | SNR (dB) | " + " | ".join(f"{m} F1 (%)" for m in METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]
    for row in rows:
        snr = row["snr_db"] if row["snr_db"] == "clean" else f"{row['snr_db']:g}"
        lines.append(f"| {row['system']} | {row['noise_type']} | {snr} | "
                     + " | ".join(f"{100 * row[f'{m}_f1']:.2f}" for m in METRICS) + " |")
    write_text_atomic(grid / "noise_table.md", "\n".join(lines) + "\n")


def plot(rows, grid: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from svt.fileio import atomic_path

    noise_types = sorted({r["noise_type"] for r in rows} - {"clean"})
    snrs = sorted({r["snr_db"] for r in rows if r["snr_db"] != "clean"})
    x_clean = (max(snrs) + 5) if snrs else 0
    clean = {r["system"]: r for r in rows if r["noise_type"] == "clean"}
    colours = dict(zip(noise_types, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6), dpi=100)
    for ax, metric in zip(axes, METRICS):
        for noise_type in noise_types:
            for system, style in (("A", dict(marker="o", linestyle="--")),
                                  ("AV", dict(marker="s", linestyle="-"))):
                points = sorted((r["snr_db"], r[f"{metric}_f1"]) for r in rows
                                if r["system"] == system and r["noise_type"] == noise_type)
                if system in clean:
                    points.append((x_clean, clean[system][f"{metric}_f1"]))
                if points:
                    ax.plot([p[0] for p in points], [100 * p[1] for p in points],
                            color=colours[noise_type], label=f"{system} {noise_type}", **style)
        ax.set_title(f"{metric} F1 (%)")
        ax.set_xticks(snrs + ([x_clean] if clean else []))
        ax.set_xticklabels([f"{s:g}" for s in snrs] + (["clean"] if clean else []))
        ax.set_xlabel("SNR (dB)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(grid / "noise_test.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", help="folder written by run_noise_grid.py")
    args = parser.parse_args(argv)
    grid = Path(args.grid)
    rows = collect(grid)
    if not rows:
        print(f"error: no summary_n20em_test.json under {grid}", file=sys.stderr)
        return 1
    write_table(rows, grid)
    plot(rows, grid)
    print((grid / "noise_table.md").read_text())
    print(f"wrote {grid / 'noise_table.csv'}, {grid / 'noise_table.md'}, {grid / 'noise_test.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
