"""Start-up time of `svt-score --help` against importing torch, in fresh interpreters of one run.

`svt-score` imports only `svt.notes` (numpy, mir_eval); until the library was split into
subpackages, `import svt` imported torch, transformers and SpeechBrain through `svt.transcribe`.
The torch import is the baseline: it is what every `svt-score` call used to pay on top.

    .venv/bin/python benchmarks/bench_cli_startup.py
"""
import statistics
import subprocess
import sys
import time

RUNS = 5
COMMANDS = {
    "svt-score --help": "import sys; sys.argv = ['svt-score', '--help']\n"
                        "from svt.cli.score import main\n"
                        "try:\n    main()\nexcept SystemExit:\n    pass\n"
                        "assert 'torch' not in sys.modules",
    "import torch (baseline)": "import torch",
    "import torch + svt.notes (the old svt-score)": "import torch, transformers, speechbrain; "
                                                    "import svt.cli.score",
}


def seconds(code: str) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    results = {name: seconds(code) for name, code in COMMANDS.items()}
    baseline = results["import torch (baseline)"]
    print(f"median of {RUNS} fresh interpreters")
    print(f"{'command':<46}{'seconds':>9}{'vs torch':>10}")
    for name, value in results.items():
        print(f"{name:<46}{value:>9.3f}{value / baseline:>9.2f}x")


if __name__ == "__main__":
    main()
