"""svt.datasets.musan: MUSAN preparation, noisy N20EMv2 mixtures, and their CLIs."""

import importlib.util
import json
import math
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from svt.audio import audio_info, read_audio, write_audio
from svt.datasets.musan import (
    CLIP_SAMPLES,
    NOISE_TYPES,
    NoiseError,
    babble_selection,
    measure_snr,
    mix_at_snr,
    noise_track,
    prepare_musan,
    signal_level,
    snr_name,
    speaker_split,
    synthesize_noisy_songs,
)
from svt.fileio import write_json_atomic
from svt.synthetic.musan import make_fake_musan
from svt.synthetic.singing import make_corpus

ROOT = Path(__file__).resolve().parents[1]
NUM_BABBLE = {"train": 5, "valid": 2, "test": 2}
PER_BABBLE = 6
SEED = 7
SNRS = (-10, -5, 0, 5, 10)


def _load_cli(name):
    path = ROOT / "N20EMv2" / "audio_visual" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_noise_cli_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(root):
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _int16(path):
    return sf.read(str(path), dtype="int16")[0]


@pytest.fixture(scope="module")
def musan(tmp_path_factory):
    root = tmp_path_factory.mktemp("musan") / "musan"
    return make_fake_musan(root, seed=0)


@pytest.fixture(scope="module")
def prepared(musan, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "out"
    result = prepare_musan(musan["root"], out, jobs=1, seed=SEED, num_babble=NUM_BABBLE,
                           speakers_per_babble=PER_BABBLE, progress=False)
    return out, result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "n20emv2"
    # 12-s songs: the babble/natural tracks need two segments (10 s + 2 s).
    make_corpus(str(root), layout="n20emv2", num_train=2, num_valid=1, num_test=1,
                song_duration_s=12, seed=0)
    return root


@pytest.fixture(scope="module")
def synthesized(corpus, prepared, tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "n20emv2"
    shutil.copytree(corpus, root)
    summary = synthesize_noisy_songs(root, prepared[0], snr_definition="amplitude", seed=3,
                                     jobs=1, progress=False)
    return root, summary


def _copy_corpus(corpus, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(corpus, dst)
    return dst


# ---------------------------------------------------------------------------------- units

def test_mix_follows_the_original_rule_and_measure_snr_inverts_it():
    rng = np.random.default_rng(0)
    clean = np.sin(np.arange(16000) * 0.05) * 0.3
    noise = rng.standard_normal(16000)
    for snr in (-10, 0, 7.5):
        noisy, cg, ng = mix_at_snr(clean, noise, snr, "amplitude")
        f = 1 / (10 ** (snr / 20) + 1)
        expected = (1 - f) * clean + noise * (f * np.mean(np.abs(clean))
                                              / (np.mean(np.abs(noise)) + 1e-14))
        np.testing.assert_allclose(noisy, expected, rtol=0, atol=1e-15)
        assert cg == pytest.approx(1 - f)
        assert measure_snr(clean, noisy, "amplitude", clean_gain=cg) == pytest.approx(snr, abs=1e-9)
        noisy_p, cg_p, _ = mix_at_snr(clean, noise, snr, "power")
        assert measure_snr(clean, noisy_p, "power", clean_gain=cg_p) == pytest.approx(snr, abs=1e-9)
        # the two definitions differ for a sine against Gaussian noise
        assert abs(measure_snr(clean, noisy_p, "amplitude", clean_gain=cg_p) - snr) > 0.1
    assert signal_level([3.0, -4.0], "amplitude") == 3.5
    assert signal_level([3.0, -4.0], "power") == pytest.approx(math.sqrt(12.5))
    assert measure_snr(clean, clean, "power") == math.inf
    with pytest.raises(NoiseError, match="definition"):
        measure_snr(clean, clean, "loudness")


def test_snr_names():
    assert [snr_name(s) for s in (-10, -5.0, 0, 10, 2.5, -0.0)] == [
        "SNR_-10dB.wav", "SNR_-5dB.wav", "SNR_0dB.wav", "SNR_10dB.wav", "SNR_2.5dB.wav",
        "SNR_0dB.wav"]


def test_noise_track_segments_follow_the_original():
    clips = {"a": np.full(50000, 0.25), "b": np.full(CLIP_SAMPLES, -0.5)}
    pool = [("a", "a"), ("b", "b")]
    n = 2 * CLIP_SAMPLES + 30000
    track, sources = noise_track("babble", n, np.random.default_rng(1), pool, clips.__getitem__)
    assert len(track) == n and [s["start"] for s in sources] == [0, CLIP_SAMPLES, 2 * CLIP_SAMPLES]
    for src in sources:
        seg = track[src["start"]:src["start"] + src["length"]]
        clip = clips[src["key"]]
        if len(clip) <= src["length"]:  # centre-padded with zeros
            before = (src["length"] - len(clip)) // 2
            assert src["pad_before"] == before
            np.testing.assert_array_equal(seg[before:before + len(clip)], clip)
            assert not seg[:before].any() and not seg[before + len(clip):].any()
        else:  # the last segment cuts a longer clip to its first R samples
            np.testing.assert_array_equal(seg, clip[:src["length"]])
    white1, _ = noise_track("white", 1000, np.random.default_rng(5))
    white2, _ = noise_track("white", 1000, np.random.default_rng(5))
    np.testing.assert_array_equal(white1, white2)


def test_speaker_split_is_seeded_and_disjoint():
    spks = [f"s{i:02d}" for i in range(20)]
    a, b = speaker_split(spks, 1), speaker_split(reversed(spks), 1)
    assert a == b and [len(a[s]) for s in ("train", "valid", "test")] == [16, 2, 2]
    assert sorted(sum(a.values(), [])) == spks
    assert speaker_split(spks, 2) != a
    small = speaker_split(["x", "y", "z"], 0)
    assert all(len(v) == 1 for v in small.values())
    with pytest.raises(NoiseError, match="at least 3"):
        speaker_split(["x", "y"], 0)


# ------------------------------------------------------------------------------ fake MUSAN

def test_fake_musan_has_the_musan_layout(musan, tmp_path):
    root = Path(musan["root"])
    files = musan["files"]
    subsets = {Path(f).parent.as_posix() for f in files}
    assert {"speech/librivox", "speech/us-gov", "music/fma", "music/fma-western-art",
            "music/hd-classical", "music/jamendo", "music/rfm", "noise/free-sound",
            "noise/sound-bible"} == subsets
    assert "speech/librivox/speech-librivox-0000.wav" in files
    assert "speech/us-gov/speech-us-gov-0000.wav" in files
    assert "noise/sound-bible/noise-sound-bible-0000.wav" in files
    assert all((root / s / "ANNOTATIONS").is_file() for s in subsets)
    lengths = set(files.values())
    assert any(n < CLIP_SAMPLES for n in lengths) and any(n > CLIP_SAMPLES for n in lengths)
    assert CLIP_SAMPLES in lengths and any(n < 16000 for n in lengths)
    for rel, n in files.items():
        assert audio_info(root / rel) == (16000, n, 1)
    again = make_fake_musan(tmp_path / "again", seed=0)
    assert _files(again["root"]) == _files(root)


# -------------------------------------------------------------------------- prepare_musan

def test_prepare_musan_clips(musan, prepared):
    out, result = prepared
    root = Path(musan["root"])
    total = 0
    for rel, n in musan["files"].items():
        rel = Path(rel)
        src = _int16(root / rel)
        pieces = sorted((out / "short-musan" / rel.parent).glob(f"{rel.stem}-*.wav"),
                        key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        assert len(pieces) == max(1, math.ceil(n / CLIP_SAMPLES))
        data = [_int16(p) for p in pieces]
        assert all(len(d) == CLIP_SAMPLES for d in data[:-1]) and len(data[-1]) <= CLIP_SAMPLES
        np.testing.assert_array_equal(np.concatenate(data), src)  # lossless, short files kept
        total += len(pieces)
    assert sum(result["clips"].values()) == total


def test_prepare_musan_speaker_split(musan, prepared):
    out, result = prepared
    spk = {s: (out / "short-musan" / "speech" / f"spk.{s}").read_text().split()
           for s in ("train", "valid", "test")}
    speech = sorted(Path(f).stem for f in musan["files"] if f.startswith("speech/"))
    assert sorted(spk["train"] + spk["valid"] + spk["test"]) == speech  # disjoint, complete
    assert [len(spk[s]) for s in ("train", "valid", "test")] == [16, 2, 2]
    assert result["speakers"] == {"train": 16, "valid": 2, "test": 2}
    assert spk == speaker_split(speech, SEED)


def test_prepare_musan_babble_uses_only_its_split(prepared):
    out, _ = prepared
    short = out / "short-musan"
    wavs = sorted((short / "babble" / "wav").glob("*.wav"))
    assert [p.name for p in wavs] == [f"{s}-{i:05d}.wav" for s in ("test", "train", "valid")
                                      for i in range(1, NUM_BABBLE[s] + 1)]
    for split in ("train", "valid", "test"):
        spks = set((short / "speech" / f"spk.{split}").read_text().split())
        pool = sorted(p.relative_to(out).as_posix() for p in (short / "speech").glob("*/*.wav")
                      if p.stem.rsplit("-", 1)[0] in spks and audio_info(p)[1] >= 16000)
        for i in range(NUM_BABBLE[split]):
            idx = babble_selection(SEED, split, i, len(pool), PER_BABBLE)
            expected = np.mean([np.resize(read_audio(out / pool[j]), CLIP_SAMPLES) for j in idx],
                               axis=0)
            got = read_audio(short / "babble" / "wav" / f"{split}-{i + 1:05d}.wav")
            assert len(got) == CLIP_SAMPLES
            assert np.max(np.abs(got - expected)) <= 0.51 / 32768


def test_prepare_musan_index_files(musan, prepared):
    out, _ = prepared
    lines = (out / "short-musan" / "nframes.audio").read_text().splitlines()
    paths = []
    for line in lines:
        path, frames = line.split("\t")
        assert Path(path).is_absolute() and audio_info(path)[1] == int(frames)
        paths.append(Path(path).relative_to(out.resolve()).as_posix())
    expected = sorted(p.relative_to(out).as_posix() for sub in ("babble", "music", "noise")
                      for p in (out / "short-musan" / sub).glob("*/*.wav"))
    assert paths == expected
    babble = json.loads((out / "noise" / "babble.json").read_text())
    assert len(babble) == sum(NUM_BABBLE.values())
    for key, item in babble.items():
        assert item["split"] == key.split("-")[0] and item["duration"] == 10.0
        assert (out / item["path"]).is_file()
    natural = json.loads((out / "noise" / "natural.json").read_text())
    assert {v["split"] for v in natural.values()} == {"train", "valid", "test"}
    split_of_source = {}
    for key, item in natural.items():
        assert key.split("/")[0] in ("free-sound", "sound-bible")
        assert (out / item["path"]).is_file()
        n = musan["files"][item["source"]]
        assert 16000 <= n <= CLIP_SAMPLES  # the original's pool: files of 1..10 s
        assert split_of_source.setdefault(item["source"], item["split"]) == item["split"]


def test_prepare_musan_resumes_and_jobs_do_not_change_bytes(musan, prepared, tmp_path):
    out, _ = prepared
    before = _files(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = prepare_musan(musan["root"], out, jobs=1, seed=SEED, num_babble=NUM_BABBLE,
                          speakers_per_babble=PER_BABBLE, progress=False)
    assert again["written"] == {"clips": 0, "babble": 0}
    assert _files(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes

    out2 = tmp_path / "out2"
    prepare_musan(musan["root"], out2, jobs=2, seed=SEED, num_babble=NUM_BABBLE,
                  speakers_per_babble=PER_BABBLE, progress=False)
    other = _files(out2)
    nf = "short-musan/nframes.audio"
    assert other.pop(nf).replace(str(out2.resolve()).encode(), b"ROOT") == \
        before[nf].replace(str(out.resolve()).encode(), b"ROOT")
    assert other == {k: v for k, v in before.items() if k != nf}

    with pytest.raises(NoiseError, match="other settings"):
        prepare_musan(musan["root"], out, seed=SEED + 1, num_babble=NUM_BABBLE,
                      speakers_per_babble=PER_BABBLE, progress=False)


def test_prepare_musan_through_slurm(musan, prepared, tmp_path, monkeypatch):
    calls = []

    class Job:
        def __init__(self, value):
            self._value = value

        def result(self):
            return self._value

    class AutoExecutor:
        def __init__(self, folder):
            self.folder = folder

        def update_parameters(self, **kw):
            calls.append(kw)

        def map_array(self, fn, *iterables):
            return [Job(fn(*args)) for args in zip(*iterables)]

    monkeypatch.setitem(sys.modules, "submitit", types.SimpleNamespace(AutoExecutor=AutoExecutor))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "slurm_out"
    prepare_musan(musan["root"], out, seed=SEED, num_babble=NUM_BABBLE,
                  speakers_per_babble=PER_BABBLE, progress=False, slurm_partition="cpu",
                  slurm_nshard=3)
    assert calls and calls[0]["slurm_partition"] == "cpu"
    assert not list(tmp_path.glob("submitit-*"))  # log folder removed
    ref, got = _files(prepared[0]), _files(out)
    nf = "short-musan/nframes.audio"
    assert got.pop(nf).replace(str(out.resolve()).encode(), b"ROOT") == \
        ref.pop(nf).replace(str(prepared[0].resolve()).encode(), b"ROOT")
    assert got == ref


# ------------------------------------------------------------------- synthesize_noisy_songs

def _check_snrs(root, definition):
    ann = json.loads((root / "annotations.json").read_text())
    checked = 0
    for song in ann:
        clean = read_audio(root / "data" / song / "vocals.wav")
        for kind in NOISE_TYPES:
            folder = root / "data" / song / "noise_data" / kind
            record = json.loads((folder / "mix.json").read_text())
            assert record["settings"]["snr_definition"] == definition
            for snr in SNRS:
                name = snr_name(snr)
                assert audio_info(folder / name) == (16000, len(clean), 1)
                noisy = read_audio(folder / name)
                gains = record["mixtures"][name]
                got = measure_snr(clean, noisy, definition, clean_gain=gains["clean_gain"])
                assert abs(got - snr) < 0.01, (song, kind, snr, got)
                if kind != "white":  # the rest of the mixture is the scaled noise track
                    track = read_audio(root / "data" / song / ("accomp.wav" if kind == "accomp"
                                                               else f"noise_data/{kind}/noise.wav"))
                    resid = noisy - gains["clean_gain"] * clean - gains["noise_gain"] * track
                    assert np.max(np.abs(resid)) < 2 / 32768
                checked += 1
    return checked


def test_synthesis_hits_the_amplitude_snr(synthesized):
    root, summary = synthesized
    assert summary == {"songs": 4, "tasks": 16, "written": 80, "skipped": 0, "kept": 0}
    assert _check_snrs(root, "amplitude") == 80


def test_synthesis_hits_the_power_snr_and_guards_settings(corpus, prepared, tmp_path):
    root = _copy_corpus(corpus, tmp_path)
    synthesize_noisy_songs(root, prepared[0], snr_definition="power", seed=3, progress=False)
    assert _check_snrs(root, "power") == 80
    with pytest.raises(NoiseError, match="other settings"):
        synthesize_noisy_songs(root, prepared[0], noise_types=["white"], snr_definition="amplitude",
                               seed=3, progress=False)
    summary = synthesize_noisy_songs(root, prepared[0], noise_types=["white"],
                                     snr_definition="amplitude", seed=3, overwrite=True,
                                     progress=False)
    assert summary["written"] == 20


def test_babble_and_natural_pools_follow_each_songs_split(synthesized, prepared):
    root, _ = synthesized
    ann = json.loads((root / "annotations.json").read_text())
    assert {v["split"] for v in ann.values()} == {"train", "valid", "test"}
    for kind in ("babble", "natural"):
        index = json.loads((prepared[0] / "noise" / f"{kind}.json").read_text())
        for song, item in ann.items():
            record = json.loads((root / "data" / song / "noise_data" / kind / "mix.json")
                                .read_text())
            assert record["split"] == item["split"]
            keys = [s["key"] for s in record["noise_sources"]]
            assert len(keys) == 2  # 12-s song: a 10-s segment and a 2-s one
            assert {index[k]["split"] for k in keys} == {item["split"]}, (kind, song)
            track = read_audio(root / "data" / song / "noise_data" / kind / "noise.wav")
            assert len(track) == 12 * 16000


def test_synthesis_is_resumable_and_independent_of_jobs_and_order(corpus, synthesized, prepared,
                                                                   tmp_path):
    root, _ = synthesized
    before = _files(root)
    summary = synthesize_noisy_songs(root, prepared[0], seed=3, progress=False)
    assert summary["written"] == 0 and summary["skipped"] == 80
    assert _files(root) == before

    par = _copy_corpus(corpus, tmp_path, "par")
    synthesize_noisy_songs(par, prepared[0], seed=3, jobs=2, progress=False)
    assert _files(par) == before

    # another order, a subset of SNRs, and a foreign file that must be kept as it is
    sub = _copy_corpus(corpus, tmp_path, "sub")
    foreign = sub / "data" / "song_002" / "noise_data" / "white" / "SNR_5dB.wav"
    write_audio(foreign, np.zeros(100), 16000)
    foreign_bytes = foreign.read_bytes()
    summary = synthesize_noisy_songs(sub, prepared[0], noise_types=["natural", "white"],
                                     snrs=[5, -10], seed=3, progress=False)
    assert summary["kept"] == 1 and summary["written"] == 15
    assert foreign.read_bytes() == foreign_bytes
    foreign_rel = foreign.relative_to(sub).as_posix()
    for rel, data in _files(sub).items():
        if "noise_data" in rel and rel.endswith(".wav") and rel != foreign_rel:
            assert before[rel] == data, rel
    assert "SNR_5dB.wav" not in json.loads((foreign.parent / "mix.json").read_text())["mixtures"]

    other_seed = _copy_corpus(corpus, tmp_path, "seed")
    synthesize_noisy_songs(other_seed, prepared[0], noise_types=["white"], snrs=[0], seed=4,
                           progress=False)
    rel = "data/song_001/noise_data/white/SNR_0dB.wav"
    assert (other_seed / rel).read_bytes() != before[rel]


def test_loud_mixtures_are_scaled_not_clipped(tmp_path):
    root = tmp_path / "loud"
    n = 3 * 16000
    t = np.arange(n) / 16000
    write_audio(root / "data" / "x" / "vocals.wav", 0.98 * np.sign(np.sin(2 * np.pi * 3 * t)),
                16000)
    write_audio(root / "data" / "x" / "accomp.wav", 0.98 * np.sin(2 * np.pi * 220 * t), 16000)
    write_json_atomic(root / "annotations.json", {"x": {"midi": [[0, 1, 60]], "split": "train"}})
    synthesize_noisy_songs(root, None, noise_types=["white", "accomp"], snrs=[-10, 10],
                           progress=False)
    clean = read_audio(root / "data" / "x" / "vocals.wav")
    scaled = 0
    for kind in ("white", "accomp"):
        record = json.loads((root / "data" / "x" / "noise_data" / kind / "mix.json").read_text())
        for snr in (-10, 10):
            name = snr_name(snr)
            noisy = _int16(root / "data" / "x" / "noise_data" / kind / name)
            assert np.max(np.abs(noisy.astype(int))) <= 32767 + 1
            gains = record["mixtures"][name]
            scaled += gains["peak_scale"] < 1
            got = measure_snr(clean, noisy / 32768.0, "amplitude", clean_gain=gains["clean_gain"])
            assert abs(got - snr) < 0.01
    assert scaled >= 2


def test_synthesis_errors(corpus, prepared, tmp_path):
    root = _copy_corpus(corpus, tmp_path)
    with pytest.raises(NoiseError, match="musan_prepared"):
        synthesize_noisy_songs(root, None, noise_types=["babble"], progress=False)
    with pytest.raises(NoiseError, match="unknown noise type"):
        synthesize_noisy_songs(root, prepared[0], noise_types=["pink"], progress=False)
    (root / "data" / "song_003" / "accomp.wav").unlink()
    with pytest.raises(NoiseError, match="accomp.wav"):
        synthesize_noisy_songs(root, None, noise_types=["accomp"], progress=False)


# ----------------------------------------------------------------------------------- CLIs

def test_prepare_musan_cli(musan, tmp_path, capsys, monkeypatch):
    cli = _load_cli("prepare_musan")
    assert cli.main(["--musan", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nope" in err and "Traceback" not in err

    half = tmp_path / "half"
    shutil.copytree(Path(musan["root"]) / "speech", half / "speech")
    assert cli.main(["--musan", str(half), "--out", str(tmp_path / "o")]) == 1
    assert "music/, noise/ missing" in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "submitit", None)  # import fails
    assert cli.main(["--musan", musan["root"], "--out", str(tmp_path / "o"),
                     "--slurm_partition", "cpu", "--no_progress"]) == 1
    assert "submitit" in capsys.readouterr().err

    out = tmp_path / "cli_out"
    assert cli.main(["--musan", musan["root"], "--out", str(out), "--seed", "1",
                     "--num_babble_train", "1", "--num_babble_valid", "1",
                     "--num_babble_test", "0", "--speakers_per_babble", "3",
                     "--no_progress"]) == 0
    assert "babble pool" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "short-musan" / "babble" / "wav").iterdir()) == [
        "train-00001.wav", "valid-00001.wav"]


def test_synthesize_noise_cli(corpus, prepared, tmp_path, capsys):
    cli = _load_cli("synthesize_noise")
    assert cli.main(["--n20emv2", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nope" in err and "Traceback" not in err

    root = _copy_corpus(corpus, tmp_path)
    assert cli.main(["--n20emv2", str(root), "--noise_types", "babble", "--no_progress"]) == 1
    assert "prepare_musan.py" in capsys.readouterr().err

    assert cli.main(["--n20emv2", str(root), "--musan_prepared", str(tmp_path / "empty"),
                     "--noise_types", "natural", "--no_progress"]) == 1
    assert "natural.json not found" in capsys.readouterr().err

    thin = tmp_path / "thin"
    shutil.copytree(prepared[0] / "noise", thin / "noise")
    index = json.loads((thin / "noise" / "natural.json").read_text())
    (thin / "noise" / "natural.json").write_text(
        json.dumps({k: v for k, v in index.items() if v["split"] != "test"}))
    assert cli.main(["--n20emv2", str(root), "--musan_prepared", str(thin),
                     "--noise_types", "natural", "--no_progress"]) == 1
    err = capsys.readouterr().err
    assert "pool of split 'test'" in err and "empty" in err

    with pytest.raises(SystemExit):
        cli.main(["--n20emv2", str(root), "--noise_types", "pink"])
    capsys.readouterr()

    assert cli.main(["--n20emv2", str(root), "--noise_types", "white,accomp", "--snrs", "-5",
                     "2.5", "--snr_definition", "power", "--no_progress"]) == 0
    assert "16 mixtures written" in capsys.readouterr().out
    folder = root / "data" / "song_004" / "noise_data"
    assert sorted(p.name for p in (folder / "white").glob("*.wav")) == [
        "SNR_-5dB.wav", "SNR_2.5dB.wav"]
    assert (folder / "accomp" / "SNR_2.5dB.wav").is_file()


@pytest.mark.parametrize("key", ["../../victim", "/tmp/abs", "a/b", ".."])
def test_song_ids_that_are_paths_are_refused_before_writing(corpus, prepared, tmp_path, key):
    import json

    root = _copy_corpus(corpus, tmp_path)
    annotations = json.loads((root / "annotations.json").read_text())
    annotations[key] = next(iter(annotations.values()))
    (root / "annotations.json").write_text(json.dumps(annotations))
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(NoiseError, match="would name paths outside"):
        synthesize_noisy_songs(root, prepared[0], seed=3, jobs=1, progress=False)
    assert sorted(p for p in tmp_path.rglob("*")) == before
