"""Tests for svt.synthetic.singing, the synthetic stand-in for MIR-ST500 / N20EMv2.

The corpus replaces real datasets in tests and the demo, so these tests check
that (a) it is deterministic, (b) it is written in exactly the real layouts,
(c) the annotations are valid note lists, and (d) the audio really sings the
annotated notes (checked with an independent pitch tracker, librosa.yin).
"""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from svt.synthetic import singing as synth

SR = 16000
DIATONIC_SETS = [frozenset((t + synth.SCALES["major"]) % 12) for t in range(12)]


def _all_files(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


def _phrases(notes, min_rest=0.2):
    """Split a note array into phrases at rests longer than ``min_rest``."""
    gaps = notes[1:, 0] - notes[:-1, 1]
    cuts = np.flatnonzero(gaps > min_rest) + 1
    return np.split(notes, cuts)


@pytest.fixture(scope="module")
def mir_corpora(tmp_path_factory):
    """Two corpora with seed 0 and one with seed 1 (small and short)."""
    kw = dict(layout="mir_st500", num_train=2, num_valid=1, num_test=2, song_duration_s=6.0)
    a = tmp_path_factory.mktemp("mir_a")
    b = tmp_path_factory.mktemp("mir_b")
    c = tmp_path_factory.mktemp("mir_c")
    return (
        synth.make_corpus(str(a), seed=0, **kw),
        synth.make_corpus(str(b), seed=0, **kw),
        synth.make_corpus(str(c), seed=1, **kw),
    )


@pytest.fixture(scope="module")
def rendered_songs():
    """One 20 s song per voice type: (voice, notes, vocals)."""
    songs = []
    for i, voice in enumerate(synth.VOICES):
        rng = np.random.default_rng(1000 + i)
        notes = synth.generate_melody(rng, 20.0, voice=voice)
        audio = synth.render_singing(notes, SR, rng, voice=voice, duration_s=20.0)
        songs.append((voice, notes, audio))
    return songs


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(mir_corpora):
    a, b, _ = mir_corpora
    fa, fb = _all_files(a["root"]), _all_files(b["root"])
    assert sorted(fa) == sorted(fb)
    for rel in fa:
        assert fa[rel] == fb[rel], rel


def test_different_seed_differs(mir_corpora):
    a, _, c = mir_corpora
    fa, fc = _all_files(a["root"]), _all_files(c["root"])
    assert fa["Annotations.json"] != fc["Annotations.json"]
    vocals = [r for r in fa if r.endswith("vocals.wav")]
    assert all(fa[r] != fc[r] for r in vocals)


def test_render_functions_are_deterministic():
    notes = synth.generate_melody(np.random.default_rng(5), 5.0, "alto")
    again = synth.generate_melody(np.random.default_rng(5), 5.0, "alto")
    np.testing.assert_array_equal(notes, again)
    v1 = synth.render_singing(notes, SR, np.random.default_rng(9), "alto", 5.0)
    v2 = synth.render_singing(notes, SR, np.random.default_rng(9), "alto", 5.0)
    np.testing.assert_array_equal(v1, v2)
    a1 = synth.render_accompaniment(notes, SR, np.random.default_rng(9), 5.0)
    a2 = synth.render_accompaniment(notes, SR, np.random.default_rng(9), 5.0)
    np.testing.assert_array_equal(a1, a2)


# --------------------------------------------------------------------- layouts


def test_mir_st500_layout(mir_corpora):
    info = mir_corpora[0]
    root = info["root"]
    with open(os.path.join(root, "Annotations.json")) as fh:
        ann = json.load(fh)
    # Ids "1".."5": train (2 train + 1 valid folded in) first, then test.
    assert list(ann) == ["1", "2", "3", "4", "5"]
    assert info["splits"] == {"train": ["1", "2", "3"], "test": ["4", "5"]}
    for song_id, notes in ann.items():
        split = "train" if int(song_id) <= 3 else "test"
        song_dir = os.path.join(root, "wav16kHz", split, song_id)
        for name in ("vocals.wav", "accomp.wav"):
            path = os.path.join(song_dir, name)
            meta = sf.info(path)
            assert (meta.samplerate, meta.channels, meta.subtype) == (SR, 1, "PCM_16")
            assert meta.frames == int(6.0 * SR)
        assert isinstance(notes, list) and notes
        for note in notes:
            assert len(note) == 3
            assert isinstance(note[0], float) and isinstance(note[1], float)
            assert isinstance(note[2], int)
            assert note[0] == round(note[0], 6) and note[1] == round(note[1], 6)
    # Nothing else was written, in particular no leftover temp files.
    expected = {"Annotations.json"} | {
        os.path.join("wav16kHz", s["split"], i, n)
        for i, s in info["songs"].items()
        for n in ("vocals.wav", "accomp.wav")
    }
    assert set(_all_files(root)) == expected


def test_n20emv2_layout(tmp_path):
    info = synth.make_corpus(
        str(tmp_path), layout="n20emv2", num_train=2, num_valid=1, num_test=1,
        song_duration_s=4.0, seed=3,
    )
    with open(tmp_path / "annotations.json") as fh:
        ann = json.load(fh)
    assert list(ann) == ["song_001", "song_002", "song_003", "song_004"]
    assert [ann[k]["split"] for k in ann] == ["train", "train", "valid", "test"]
    assert info["splits"] == {
        "train": ["song_001", "song_002"], "valid": ["song_003"], "test": ["song_004"],
    }
    for entry, item in ann.items():
        assert set(item) == {"midi", "split"}
        assert all(len(n) == 3 and isinstance(n[2], int) for n in item["midi"])
        for name in ("vocals.wav", "accomp.wav"):
            audio, sr = sf.read(tmp_path / "data" / entry / name)
            assert sr == SR and audio.ndim == 1 and len(audio) == 4 * SR
    expected = {"annotations.json"} | {
        os.path.join("data", e, n) for e in ann for n in ("vocals.wav", "accomp.wav")
    }
    assert set(_all_files(str(tmp_path))) == expected


def test_voices_vary_across_songs(mir_corpora):
    voices = [s["voice"] for s in mir_corpora[0]["songs"].values()]
    assert len(set(voices)) == len(voices) == 5  # 5 songs cycle all 5 voices


def test_cli(tmp_path):
    rc = synth.main([str(tmp_path), "--layout", "mir_st500", "--num-train", "1",
                     "--num-test", "1", "--duration", "3", "--seed", "0"])
    assert rc == 0
    ann = json.loads((tmp_path / "Annotations.json").read_text())
    assert list(ann) == ["1", "2"]
    assert (tmp_path / "wav16kHz" / "train" / "1" / "vocals.wav").is_file()
    assert (tmp_path / "wav16kHz" / "test" / "2" / "accomp.wav").is_file()


# ------------------------------------------------------------------ note lists


@pytest.mark.parametrize("voice", synth.VOICES)
def test_melody_note_constraints(voice):
    lo, hi = synth.VOICE_RANGES[voice]
    for seed in range(20):
        notes = synth.generate_melody(np.random.default_rng(seed), 30.0, voice=voice)
        assert notes.dtype == np.float64 and notes.ndim == 2 and notes.shape[1] == 3
        assert len(notes) >= 10
        on, off, midi = notes.T
        assert np.all(np.diff(on) > 0), "sorted"
        assert np.all(on[1:] >= off[:-1]), "non-overlapping"
        assert np.all(off - on >= 0.1)
        assert on[0] >= 0 and off[-1] <= 30.0
        np.testing.assert_array_equal(midi, np.round(midi))
        assert midi.min() >= max(lo, 36) and midi.max() <= min(hi, 83)
        # Phrases are separated by rests; phrase-internal gaps are short.
        phrases = _phrases(notes)
        assert len(phrases) >= 2
        assert all(4 <= len(p) <= 8 for p in phrases)
        rests = on[1:] - off[:-1]
        assert rests.max() <= 1.6


def test_melody_tempo_argument():
    # At 120 bpm every inter-onset interval is a multiple of an eighth note
    # (0.25 s) within a phrase.
    notes = synth.generate_melody(np.random.default_rng(0), 30.0, "tenor", tempo_bpm=120)
    for phrase in _phrases(notes):
        ioi = np.diff(phrase[:, 0]) / 0.25
        np.testing.assert_allclose(ioi, np.round(ioi), atol=1e-4)


def test_melody_musicality():
    for seed in range(40):
        voice = synth.VOICES[seed % len(synth.VOICES)]
        notes = synth.generate_melody(np.random.default_rng(seed), 30.0, voice=voice)
        intervals = np.concatenate([np.abs(np.diff(p[:, 2])) for p in _phrases(notes)])
        assert np.mean(intervals <= 2) >= 0.6, seed
        pcs = set(notes[:, 2].astype(int) % 12)
        assert any(pcs <= s for s in DIATONIC_SETS), (seed, pcs)


# ---------------------------------------------------------------------- audio


def test_rendered_pitch_matches_annotation(rendered_songs):
    librosa = pytest.importorskip("librosa")
    hop = 160
    for voice, notes, audio in rendered_songs:
        assert audio.dtype == np.float32 and len(audio) == 20 * SR
        assert abs(float(np.max(np.abs(audio))) - 0.5) < 1e-3
        f0 = librosa.yin(audio.astype(np.float64), fmin=60, fmax=1100, sr=SR,
                         frame_length=1024, hop_length=hop)
        times = np.arange(len(f0)) * hop / SR
        hits = []
        for on, off, midi in notes:
            mid = (times >= on + 0.08) & (times <= off - 0.05)
            assert mid.any()
            est = 69 + 12 * np.log2(np.median(f0[mid]) / 440.0)
            hits.append(abs(est - midi) * 100 <= 50)
        assert np.mean(hits) >= 0.9, (voice, np.mean(hits))


def test_rests_are_quiet(rendered_songs):
    checked = 0
    for voice, notes, audio in rendered_songs:
        note_rms = np.median([
            np.sqrt(np.mean(audio[int(on * SR):int(off * SR)] ** 2)) for on, off, _ in notes
        ])
        # Long rests, skipping the release/reverb tail and the pre-onset
        # consonant, contain only breath noise.
        bounds = zip(np.r_[notes[:, 1]], np.r_[notes[1:, 0], len(audio) / SR])
        rests = [(a, b) for a, b in bounds if b - a >= 0.6]
        if not rests:
            continue
        checked += 1
        rest_audio = np.concatenate([audio[int((a + 0.25) * SR):int((b - 0.15) * SR)]
                                     for a, b in rests])
        rest_rms = np.sqrt(np.mean(rest_audio ** 2))
        assert rest_rms < 0.1 * note_rms, (voice, rest_rms / note_rms)
        # Before the first note there is (near) silence.
        lead = audio[: int(max(notes[0, 0] - 0.2, 0.0) * SR)]
        if lead.size:
            assert np.sqrt(np.mean(lead ** 2)) < 0.1 * note_rms
    assert checked >= 3


def test_accompaniment_in_key_and_normalised(rendered_songs):
    voice, notes, _ = rendered_songs[1]
    acc = synth.render_accompaniment(notes, SR, np.random.default_rng(0), 20.0)
    assert acc.dtype == np.float32 and len(acc) == 20 * SR
    assert abs(float(np.max(np.abs(acc))) - 0.5) < 1e-3
    # Chroma of the accompaniment: energy should sit on the melody's scale.
    spec = np.abs(np.fft.rfft(acc.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(acc), 1.0 / SR)
    band = (freqs > 60) & (freqs < 1000)
    pcs = np.round(12 * np.log2(freqs[band] / 440.0) + 69).astype(int) % 12
    chroma = np.bincount(pcs, weights=spec[band], minlength=12)
    tonic, mode = synth.infer_key(notes)
    scale = (tonic + synth.SCALES[mode]) % 12
    assert chroma[scale].sum() / chroma.sum() > 0.9
    assert set(notes[:, 2].astype(int) % 12) <= set(scale)


def test_empty_and_default_duration():
    assert synth.render_singing(np.zeros((0, 3)), SR, 0, "tenor", 1.0).shape == (SR,)
    notes = np.array([[0.2, 0.8, 60.0]])
    y = synth.render_singing(notes, SR, 0, "tenor")
    assert len(y) == int(round((0.8 + 0.6) * SR))
    with pytest.raises(ValueError):
        synth.generate_melody(0, 5.0, voice="baritone")
    with pytest.raises(ValueError):
        synth.make_corpus("unused", layout="nope")


# ------------------------------------------------------------------ lip video


def _mouth_darkness(video):
    """Mean darkness of the mouth area per frame (an open mouth shows the dark interior)."""
    return 255.0 - video[:, 28:84, 16:80].reshape(len(video), -1).mean(axis=1)


def test_lip_video_shape_dtype_determinism():
    notes = synth.generate_melody(np.random.default_rng(2), 6.0, "alto")
    video = synth.render_lip_video(notes, 6.0, rng=np.random.default_rng(5))
    assert video.shape == (300, 96, 96) and video.dtype == np.uint8
    np.testing.assert_array_equal(video, synth.render_lip_video(notes, 6.0, rng=5))
    assert not np.array_equal(video, synth.render_lip_video(notes, 6.0, rng=6))
    assert synth.render_lip_video(notes, 2.01, fps=25, rng=0, size=112).shape == (50, 112, 112)
    assert synth.render_lip_video(notes, 0.0, rng=0).shape == (0, 96, 96)
    # No notes: the mouth stays closed, only head motion and noise change the frames.
    still = _mouth_darkness(synth.render_lip_video(np.zeros((0, 3)), 6.0, rng=5))  # same singer
    assert np.ptp(still) < 0.2 * np.ptp(_mouth_darkness(video))
    with pytest.raises(ValueError, match="vowels"):
        synth.render_lip_video(notes, 6.0, rng=0, vowels=["a"])


def test_lip_video_shows_onsets():
    """The mouth closes or narrows just before every onset and opens on the vowel: the darkness
    of the mouth area has a local minimum within 100 ms before each onset, followed by a clear
    rise, and follows the sung notes overall."""
    fps = 50
    for seed, voice in [(11, "tenor"), (12, "soprano"), (13, "bass")]:
        rng = np.random.default_rng(seed)
        notes = synth.generate_melody(rng, 15.0, voice)
        video = synth.render_lip_video(notes, 15.0, fps, rng)
        dark = _mouth_darkness(video)
        span = np.percentile(dark, 95) - np.percentile(dark, 5)
        voiced = np.zeros(len(dark))
        t = np.arange(len(dark)) / fps
        for k, (on, off, _) in enumerate(notes):
            voiced[(t >= on) & (t < off)] = 1.0
            i = int(round(on * fps))
            window = dark[i - 5:i + 3]  # 100 ms before to 40 ms after the onset
            low = window.min()
            assert np.argmin(window) <= 5, (seed, k)  # the minimum is at or before the onset
            assert dark[i:i + 6].max() - low > 0.08 * span, (seed, k)  # the rise
            if k > 0 and on - notes[k - 1, 1] <= synth.LIP_REST_GAP_S:  # legato: a real dip
                before = dark[int(round(notes[k - 1, 0] * fps)):i].max()
                assert before - low > 0.03 * span, (seed, k)
        assert np.corrcoef(voiced, dark)[0, 1] > 0.5


def test_n20emv2_corpus_with_video(tmp_path):
    kw = dict(layout="n20emv2", num_train=1, num_valid=0, num_test=1, song_duration_s=3.0,
              seed=8)
    plain = synth.make_corpus(str(tmp_path / "plain"), **kw)
    info = synth.make_corpus(str(tmp_path / "video"), with_video=True, **kw)
    for entry, song in info["songs"].items():
        assert song["video"] == os.path.join(info["root"], "data", entry, "video_50fps.npy")
        video = np.load(song["video"])
        assert video.shape == (150, 96, 96) and video.dtype == np.uint8
        # The audio and notes do not depend on whether videos are made.
        with open(song["vocals"], "rb") as a, open(plain["songs"][entry]["vocals"], "rb") as b:
            assert a.read() == b.read()
    assert _all_files(info["root"])["annotations.json"] == \
        _all_files(plain["root"])["annotations.json"]
    assert not os.path.exists(os.path.join(plain["root"], "data", "song_001", "video_50fps.npy"))
    videos = [np.load(s["video"]) for s in info["songs"].values()]
    assert not np.array_equal(videos[0], videos[1])
    with pytest.raises(ValueError, match="with_video"):
        synth.make_corpus(str(tmp_path / "mir"), layout="mir_st500", with_video=True)
    assert synth.main([str(tmp_path / "cli"), "--layout", "n20emv2", "--num-train", "1",
                       "--num-test", "0", "--duration", "2", "--video"]) == 0
    assert np.load(tmp_path / "cli/data/song_001/video_50fps.npy").shape == (100, 96, 96)


# ---------------------------------------------------------------------------
# Room reverberation (the benchmarks' reverberant condition)
# ---------------------------------------------------------------------------
def test_room_reverb_decays_by_60_db_over_its_rt60():
    from svt.synthetic.recorded_singing import add_room_reverb

    sr, rt60 = 16000, 0.8
    impulse = np.zeros(2 * sr)
    impulse[0] = 1.0
    response = add_room_reverb(impulse, sr, rt60, 0.0, np.random.default_rng(3))
    # The direct sound first (the FFT convolution leaves only rounding before the 5-ms delay).
    assert response[0] == pytest.approx(1.0)
    assert np.abs(response[1:int(0.005 * sr)]).max() < 1e-9 * np.abs(response[1:]).max()
    tail = response[1:]
    # ISO 3382's T20: the Schroeder decay curve's slope from -5 to -25 dB, extrapolated to -60.
    decay = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] / np.sum(tail ** 2))
    t = np.arange(len(decay)) / sr
    span = (decay <= -5) & (decay >= -25)
    slope = np.polyfit(t[span], decay[span], 1)[0]  # dB per second
    assert -60 / slope == pytest.approx(rt60, rel=0.1)


@pytest.mark.parametrize("drr_db", [0.0, 6.0, -3.0])
def test_room_reverb_sits_its_direct_to_reverberant_ratio_below_the_dry_signal(drr_db):
    from svt.synthetic.recorded_singing import add_room_reverb

    sr = 16000
    dry = np.random.default_rng(0).standard_normal(20 * sr)
    wet = add_room_reverb(dry, sr, 0.5, drr_db, np.random.default_rng(1)) - dry
    measured = 10 * np.log10(np.sum(dry[sr:] ** 2) / np.sum(wet[sr:] ** 2))  # after the build-up
    assert measured == pytest.approx(drr_db, abs=0.5)


def test_room_reverb_is_seeded_keeps_the_length_and_refuses_bad_rooms():
    from svt.synthetic.recorded_singing import add_room_reverb

    x = np.random.default_rng(0).standard_normal(8000)
    a = add_room_reverb(x, 16000, 0.3, 3.0, np.random.default_rng(7))
    assert a.shape == x.shape
    np.testing.assert_array_equal(a, add_room_reverb(x, 16000, 0.3, 3.0,
                                                     np.random.default_rng(7)))
    assert not np.array_equal(a, add_room_reverb(x, 16000, 0.3, 3.0, np.random.default_rng(8)))
    for rt60 in (0.0, -1.0, float("nan"), 60.0):
        with pytest.raises(ValueError, match="rt60_s must be a reverberation time"):
            add_room_reverb(x, 16000, rt60, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="direct_to_reverberant_db must be a finite"):
        add_room_reverb(x, 16000, 0.3, float("inf"), np.random.default_rng(0))


def test_corpus_rooms_reverberate_at_the_styles_level():
    from svt.synthetic.recorded_singing import CorpusStyle, _room

    assert CorpusStyle().room_reverb_gain == (0.05, 0.6)  # the shipped model's corpus
    sr = 16000
    x = np.random.default_rng(0).standard_normal(10 * sr)
    np.testing.assert_array_equal(_room(np.random.default_rng(1), x, sr, (0.0, 0.0)), x)
    for gain in (0.3, 1.0):
        wet = _room(np.random.default_rng(1), x, sr, (gain, gain)) - x
        # The reverberation's energy is the dry signal's times gain squared (after the build-up).
        assert np.sum(wet[2 * sr:] ** 2) / np.sum(x[2 * sr:] ** 2) == pytest.approx(gain ** 2,
                                                                                 rel=0.1)


# ---------------------------------------------------------------------- pitch gestures


def _gesture(kind, notes, seed=0, t_end=None):
    notes = np.asarray(notes, dtype=np.float64)
    t = np.arange(0.0, t_end or notes[-1, 1] + 0.3, 0.001)
    return t, synth.pitch_gestures(notes, t, np.random.default_rng(seed), 1.0, ((kind, 1.0),))


def test_pitch_gestures_move_only_the_part_of_the_note_they_describe():
    for seed in range(20):
        t, g = _gesture("fall", [[0.0, 1.0, 60.0]], seed)  # a note before the end: it may fall
        assert np.all(g[t <= 0.7] == 0.0)  # at most 0.25 s and 30 % of the note move
        assert -4.0 <= g[t >= 1.0].max() <= -1.0 and np.all(np.diff(g) <= 1e-12)
        moving = t[(g < 0) & (g > g[-1])]
        assert 0.08 - 0.002 <= moving[-1] - moving[0] <= 0.25

        t, g = _gesture("approach", [[0.5, 1.5, 60.0]], seed)
        assert np.all(g[t < 0.5] == 0.0) and np.all(g[t >= 0.75] == 0.0)
        assert -1.5 <= g[t >= 0.5][0] <= -0.5 or 0.3 <= g[t >= 0.5][0] <= 0.8

        t, g = _gesture("dip", [[0.0, 1.0, 60.0]], seed)
        assert 0.3 - 1e-9 <= np.abs(g).max() <= 0.9
        assert np.all(np.abs(g[(t < 0.2) | (t > 0.8)]) < 1e-12)

        t, g = _gesture("drift", [[0.0, 1.0, 60.0]], seed)
        assert g[0] == pytest.approx(-g[t >= 1.0][0]) and 0.075 <= abs(g[0]) <= 0.2


def test_pitch_gestures_that_do_not_fit_the_note_leave_it_alone():
    # Overshoot needs a connected step of half a semitone or more; a correction 0.3 s of note; a
    # dip 0.35 s; a fall a rest of 0.1 s after the note.
    assert not _gesture("overshoot", [[0.0, 0.5, 60.0], [1.0, 1.5, 62.0]])[1].any()
    assert not _gesture("overshoot", [[0.0, 0.5, 60.0], [0.52, 1.0, 60.2]])[1].any()
    assert not _gesture("correction", [[0.0, 0.25, 60.0]])[1].any()
    assert not _gesture("dip", [[0.0, 0.3, 60.0]])[1].any()
    _, g = _gesture("fall", [[0.0, 0.5, 60.0], [0.55, 1.0, 62.0]], seed=1)
    t = np.arange(len(g)) * 0.001
    assert not g[t < 0.55].any() and g[t >= 1.0].min() < -0.9  # only the last note falls


def test_pitch_gestures_of_a_joined_note_start_at_the_sounding_pitch():
    for kind in ("approach", "correction", "drift"):
        t, g = _gesture(kind, [[0.0, 0.5, 60.0], [0.505, 1.2, 62.0]], seed=3)
        joined = t >= 0.505
        assert g[joined][0] == pytest.approx(0.0, abs=1e-9)  # faded in, no jump
        assert np.all(np.abs(np.diff(g[joined][:60])) < 0.05)
    t, g = _gesture("overshoot", [[0.0, 0.5, 60.0], [0.505, 1.2, 62.0]], seed=3)
    assert 0.2 - 1e-9 <= g.max() <= 0.7 and g.min() == 0.0  # past the new pitch, upwards


def test_pitch_gestures_keep_each_notes_median_pitch():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        n = 40
        dur = rng.uniform(0.1, 2.0, n)
        gap = np.where(rng.random(n) < 0.4, 0.005, rng.uniform(0.05, 0.5, n))
        on = np.cumsum(np.r_[0.0, (dur + gap)[:-1]])
        notes = np.c_[on, on + dur, rng.integers(50, 70, n)]
        t = np.arange(0.0, on[-1] + dur[-1] + 0.5, 0.001)
        g = synth.pitch_gestures(notes, t, np.random.default_rng(seed + 100), 1.0)
        assert np.mean([np.abs(g[(t >= a) & (t < b)]).max() > 0.1 for a, b, _ in notes]) > 0.5
        for a, b, _ in notes:
            assert abs(np.median(g[(t >= a) & (t < b)])) < 0.01
    t = np.arange(0.0, 2.0, 0.001)
    assert not synth.pitch_gestures([[0.0, 1.0, 60.0]], t, np.random.default_rng(0), 0.0).any()


def test_rendered_gestures_change_only_the_pitch_and_only_when_asked():
    import dataclasses

    from svt.synthetic.recorded_singing import CorpusStyle, render_recorded_song

    notes, audio, info = render_recorded_song(5, 8.0, CorpusStyle())
    again = render_recorded_song(5, 8.0, dataclasses.replace(CorpusStyle(), pitch_gestures=0.0))
    np.testing.assert_array_equal(audio, again[1])  # 0: the songs stay byte-identical
    moved_notes, moved, moved_info = render_recorded_song(
        5, 8.0, dataclasses.replace(CorpusStyle(), pitch_gestures=0.5))
    np.testing.assert_array_equal(notes, moved_notes)  # the annotation is the same notes
    assert moved_info["timbre"] == {**info["timbre"], "pitch_gestures": 0.5}
    assert not np.array_equal(audio, moved)
    # Only the f0 differs: the loudness follows the same envelope (frames of 50 ms).
    frames = lambda x: np.sqrt(np.mean(x[: len(x) // 800 * 800].reshape(-1, 800) ** 2, axis=1))
    level, moved_level = frames(audio), frames(moved)
    loud = level > 0.1 * level.max()
    assert np.median(np.abs(np.log(moved_level[loud] / level[loud]))) < 0.2


# ---------------------------------------------------------------------- sung-through rests


def test_voiced_gaps_choose_only_short_rests_and_draw_in_range():
    notes = np.array([[0.0, 0.5, 60], [0.505, 1.0, 62], [1.1, 1.5, 64], [2.5, 3.0, 60],
                      [3.02, 3.5, 59]], dtype=np.float64)  # rests: 5 ms, 100 ms, 1 s, 20 ms
    plan = synth.voiced_gaps(notes, np.random.default_rng(0), 1.0)
    assert plan.shape == (5, 2)
    assert np.all(plan[[0, 1, 3]] == 0.0)  # the first note, a legato join, a breath
    assert np.all((plan[[2, 4], 0] >= 0.2) & (plan[[2, 4], 0] <= 0.8))
    assert np.all((plan[[2, 4], 1] >= 0.2) & (plan[[2, 4], 1] <= 0.7))
    assert not synth.voiced_gaps(notes, np.random.default_rng(0), 0.0).any()
    shares = [synth.voiced_gaps(np.c_[np.arange(200) * 0.6, np.arange(200) * 0.6 + 0.5,
                                      np.full(200, 60.0)], np.random.default_rng(s), 0.3)
              [1:, 0].astype(bool).mean() for s in range(5)]
    assert np.mean(shares) == pytest.approx(0.3, abs=0.05)


def test_a_sung_through_rest_moves_the_pitch_and_keeps_the_voice_sounding():
    notes = np.array([[0.0, 0.5, 60.0], [0.6, 1.2, 64.0]])
    t = np.arange(0.0, 1.6, 0.001)
    plan = np.array([[0.0, 0.0], [0.5, 0.5]])  # half the level, the move over the rest's first half
    f0 = synth._f0_track(notes, t, np.random.default_rng(1), 0.0, 1.0, 0.0, plan)
    plain = synth._f0_track(notes, t, np.random.default_rng(1), 0.0, 1.0, 0.0, None)
    at = lambda s: int(round(s * 1000))
    # Same draws: identical outside the rest and the next note's glide (drift and jitter < 0.2).
    np.testing.assert_array_equal(f0[: at(0.5)], plain[: at(0.5)])
    assert abs(f0[at(0.55)] - 64.0) < 0.25 and abs(plain[at(0.55)] - 60.0) < 0.25  # arrived
    assert abs(f0[at(0.525)] - 62.0) < 0.25  # halfway through the move
    assert np.all(np.abs(f0[at(0.6): at(0.7)] - 64.0) < 0.25)  # the note starts on its pitch
    assert abs(plain[at(0.6)] - 60.0) < 0.25  # without it the glide starts at the onset
    env = synth._amplitude_track(notes, t, np.random.default_rng(2), plan)
    dry = synth._amplitude_track(notes, t, np.random.default_rng(2))
    np.testing.assert_array_equal(env[: at(0.5)], dry[: at(0.5)])
    rest = env[at(0.5): at(0.6)]
    # Half the quieter note's level (>= 0.5 * 0.45), never below it; without it the voice stops.
    assert rest.min() >= 0.5 * 0.45 - 1e-9 and np.ptp(rest[-30:]) == 0.0 and dry[at(0.59)] < 0.05
    assert np.all(env >= dry)


def test_rendered_sung_through_rests_change_the_song_only_when_asked():
    import dataclasses

    from svt.synthetic.recorded_singing import CorpusStyle, render_recorded_song

    notes, audio, info = render_recorded_song(6, 8.0, CorpusStyle())
    again = render_recorded_song(6, 8.0, dataclasses.replace(CorpusStyle(), voiced_gaps=0.0))
    np.testing.assert_array_equal(audio, again[1])
    sung_notes, _, sung_info = render_recorded_song(
        6, 8.0, dataclasses.replace(CorpusStyle(), voiced_gaps=1.0))
    np.testing.assert_array_equal(notes, sung_notes)  # the rests stay in the annotation
    assert sung_info["timbre"] == {**info["timbre"], "voiced_gaps": 1.0}
    # Without the room and noise: more voice in the short rests, the same inside the notes.
    dry = dataclasses.replace(CorpusStyle(), recording=False)
    notes, audio, _ = render_recorded_song(6, 8.0, dry)
    sung = render_recorded_song(6, 8.0, dataclasses.replace(dry, voiced_gaps=1.0))[1]
    rests = [(a + 0.01, b - 0.005) for (_, a, _), (b, _, _) in zip(notes[:-1], notes[1:])
             if 0.03 <= b - a <= 0.3]
    middles = [(a + 0.1, b - 0.05) for a, b, _ in notes if b - a > 0.3]
    assert len(rests) >= 4
    energy = lambda x, spans: sum(np.sum(x[int(a * 16000): int(b * 16000)] ** 2) for a, b in spans)
    assert energy(sung, rests) > 2 * energy(audio, rests)
    assert energy(sung, middles) == pytest.approx(energy(audio, middles), rel=0.05)


def test_murmur_tracks_cover_each_sung_through_rest_with_a_voiced_consonant():
    notes = np.array([[0.0, 0.5, 60.0], [0.6, 1.2, 64.0], [1.25, 1.8, 62.0], [2.8, 3.3, 60.0]])
    t = np.arange(0.0, 3.5, 0.001)
    plan = np.array([[0.0, 0.0], [0.5, 0.5], [0.0, 0.0], [0.0, 0.0]])  # only the first rest
    weight, formants, corner = synth.murmur_tracks(notes, t, plan, np.random.default_rng(3), 1.1)
    at = lambda s: int(round(s * 1000))
    half = synth.MURMUR_FADE_S / 2
    assert np.all(weight[at(0.5 + half): at(0.6 - half)] == 1.0)  # the rest, between the fades
    assert weight[at(0.5)] == pytest.approx(0.5) and weight[at(0.6)] == pytest.approx(0.5)
    assert not weight[: at(0.5 - half)].any() and not weight[at(0.6 + half):].any()
    tables = {name: (np.array(f) * 1.1, band) for name, (f, band) in synth.MURMURS.items()}
    inside = formants[at(0.55)]
    matches = [name for name, (f, _) in tables.items() if np.all(np.abs(inside / f - 1) <= 0.05)]
    assert matches and tables[matches[0]][1][0] <= corner[at(0.55)] <= tables[matches[0]][1][1]
    assert np.all(corner[at(0.7):] == 1e9)


def test_a_sung_through_rest_is_sung_on_a_murmur_and_the_notes_are_unchanged(monkeypatch):
    notes = np.array([[0.1, 0.6, 57.0], [0.7, 1.3, 60.0], [1.4, 2.0, 62.0], [2.1, 2.7, 59.0]])
    timbre = {"voiced_gaps": 1.0}
    monkeypatch.setattr(synth, "_reverb", lambda x, sr, rng: x)  # the voice alone, no room tail
    murmured = synth.render_singing(notes, 16000, 5, "tenor", timbre=timbre)
    real = synth.murmur_tracks

    def no_murmur(*args, **kwargs):  # the same draws, the vowel's spectrum kept in the rests
        weight, formants, corner = real(*args, **kwargs)
        return np.zeros_like(weight), formants, corner

    monkeypatch.setattr(synth, "murmur_tracks", no_murmur)
    vowel = synth.render_singing(notes, 16000, 5, "tenor", timbre=timbre)

    def band_db(x, a, b, lo, hi):
        piece = x[int(a * 16000): int(b * 16000)]
        spectrum = np.abs(np.fft.rfft(piece * np.hanning(len(piece)))) ** 2
        hz = np.fft.rfftfreq(len(piece), 1 / 16000)
        return 10 * np.log10(spectrum[(hz >= lo) & (hz < hi)].sum())

    for a, b in [(0.615, 0.685), (1.315, 1.385), (2.015, 2.085)]:  # the rests, past the fades
        # The murmur's upper harmonics and the vowel's breath noise are gone.
        assert band_db(vowel, a, b, 500, 1000) - band_db(murmured, a, b, 500, 1000) > 10
        assert band_db(vowel, a, b, 2000, 8000) - band_db(murmured, a, b, 2000, 8000) > 20
    # Inside the notes, away from the crossfades and the vowels' 41-ms smoothing, the voice is
    # the same within 1 % (the breath noise is scaled by the whole song's voiced level).
    for a, b, _ in notes:
        span = slice(int((a + 0.08) * 16000), int((b - 0.08) * 16000))
        big = np.abs(vowel[span]) > 0.05
        assert np.max(np.abs(murmured[span][big] / vowel[span][big] - 1)) < 0.01


def test_corpus_style_refuses_shares_outside_zero_to_one():
    from svt.synthetic.recorded_singing import CorpusStyle

    for name in ("pitch_gestures", "voiced_gaps"):
        for share in (-0.1, 1.5, float("nan"), "half"):
            with pytest.raises(ValueError, match=f"CorpusStyle.{name} is a share of the notes"):
                CorpusStyle(**{name: share})
        assert getattr(CorpusStyle(**{name: 1.0}), name) == 1.0
