"""`svt.synthetic.recorded_voices`: WORLD resynthesis of recorded syllables onto a melody.

CI has no gcin-voice package, so each test builds a tiny bank in the real layout
(``<root>/<syllable>/3.ogg`` male, ``5.ogg`` female, Ogg Vorbis at 44.1 kHz): synthetic
syllables made of a consonant (a noise burst, or a quiet voiced murmur) and a harmonic vowel.
"""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from svt.synthetic import recorded_voices as rv

try:  # through the module, as the corpus imports it
    pw = rv.load_world()
except ImportError:  # pragma: no cover - pyworld is pinned in requirements.txt
    pytest.skip("pyworld is not installed", allow_module_level=True)

SR = 16000
FILE_SR = 44100
# Vowel formants (Hz) of the synthetic syllables.
FORMANTS = {"a": (750, 1200, 2600), "i": (300, 2300, 3000), "o": (500, 900, 2500)}


def _vowel(f0: float, formants, dur: float, rng, level=0.3) -> np.ndarray:
    t = np.arange(int(dur * FILE_SR)) / FILE_SR
    f0_t = f0 * (1 + 0.003 * np.sin(2 * np.pi * 4.5 * t))  # a little natural wobble
    phase = 2 * np.pi * np.cumsum(f0_t) / FILE_SR
    y = np.zeros_like(t)
    for h in range(1, int(5000 / f0)):
        f = h * f0
        amp = sum(1.0 / (1 + ((f - fc) / 120.0) ** 2) for fc in formants) / h ** 0.5
        y += amp * np.sin(h * phase)
    y += 0.01 * rng.standard_normal(len(t))  # breath
    env = np.minimum(1.0, t / 0.02) * np.minimum(1.0, (dur - t) / 0.04)
    return level * y / np.max(np.abs(y)) * env


def _noise(dur: float, rng, level=0.08) -> np.ndarray:
    n = int(dur * FILE_SR)
    y = np.diff(rng.standard_normal(n + 1))  # bright, like a fricative
    return level * y / np.max(np.abs(y)) * np.hanning(n) ** 0.3


def _syllable(name: str, f0: float, rng) -> np.ndarray:
    """Silence, the consonant, the vowel: 's', 'm', 'l' initials or none."""
    vowel = FORMANTS[{"ㄚ": "a", "ㄧ": "i", "ㄛ": "o"}[name[-1]]]
    lead = np.zeros(int(0.03 * FILE_SR))
    if name[0] == "ㄙ":
        cons = _noise(0.09, rng)
    elif name[0] in "ㄇㄌ":
        cons = _vowel(f0, (250, 2500, 3500), 0.07, rng, level=0.03)  # quiet nasal/lateral murmur
    else:
        cons = np.zeros(0)
    return np.concatenate([lead, cons, _vowel(f0, vowel, 0.3, rng), np.zeros(int(0.02 * FILE_SR))])


def make_bank(root: Path, names=("ㄙㄚ", "ㄇㄚ", "ㄚ", "ㄌㄧ", "ㄙㄛ"), speakers=("3", "5")) -> Path:
    rng = np.random.default_rng(7)
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        for stem in speakers:
            f0 = 130.0 if stem == "3" else 290.0
            sf.write(root / name / f"{stem}.ogg", _syllable(name, f0, rng), FILE_SR,
                     format="OGG", subtype="VORBIS")
    return root


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return rv.find_voice_bank(make_bank(tmp_path_factory.mktemp("gcin") / "ogg"))


def _f0(y: np.ndarray):
    f0, t = pw.harvest(y.astype(np.float64), SR, f0_floor=70.0, f0_ceil=1000.0, frame_period=5.0)
    return f0, t


def _cents(hz, midi):
    return 1200 * np.log2(hz / (440.0 * 2 ** ((midi - 69) / 12)))


# ------------------------------------------------------------------------------ the bank

def test_missing_bank_gives_a_clear_error(tmp_path):
    with pytest.raises(rv.VoiceBankNotFoundError) as err:
        rv.find_voice_bank(tmp_path / "nowhere")
    assert isinstance(err.value, FileNotFoundError)
    assert "apt-get install gcin-voice" in str(err.value)
    (tmp_path / "empty" / "ㄚ").mkdir(parents=True)  # a folder without any known speaker's files
    (tmp_path / "empty" / "ㄚ" / "7.ogg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="apt-get install gcin-voice"):
        rv.find_voice_bank(tmp_path / "empty")


def test_bank_lists_files_per_speaker_with_licences(tmp_path, bank):
    assert bank.speaker_names == ("male", "female")
    male, female = bank.speaker("male"), bank.speaker("female")
    assert male.licence == "GPL-3 or LGPL-3" and "Edward Der-Hua Liu" in male.credit
    assert female.licence == "CC-BY-3.0" and "Chu Lo" in female.credit
    assert sorted(male.syllables) == sorted(["ㄙㄚ", "ㄇㄚ", "ㄚ", "ㄌㄧ", "ㄙㄛ"])
    assert all(p.name == "5.ogg" for p in female.files)
    # The package folder (with ogg/ inside) works too; speakers can be restricted.
    again = rv.find_voice_bank(bank.root.parent, speakers=["female"])
    assert again.speaker_names == ("female",) and again.root == bank.root
    with pytest.raises(ValueError, match="no speaker"):
        again.speaker("male")


def test_analysis_finds_the_vowel_after_the_consonant(bank):
    s = rv.analyse_syllable(bank.root / "ㄙㄚ" / "3.ogg", SR)
    # 30 ms silence + 90 ms noise: the vowel starts at 120 ms.
    assert s.usable and abs(s.vowel_start * 5 - 120) <= 15
    assert s.start * 5 <= 50 and not s.voiced_onset
    assert s.vowel_start < s.steady_start < s.steady_end <= s.voiced_end
    m = rv.analyse_syllable(bank.root / "ㄇㄚ" / "5.ogg", SR)
    # The murmur (30..100 ms) is voiced and quiet: the vowel starts at 100 ms.
    assert abs(m.vowel_start * 5 - 100) <= 15 and m.voiced_onset
    assert rv.analyse_syllable(bank.root / "ㄇㄚ" / "5.ogg", SR) is m  # cached


# ------------------------------------------------------------------------------ rendering

DETACHED = np.array([
    [0.40, 1.00, 48.0],
    [1.30, 1.75, 55.3],   # fractional: the sung pitch
    [2.10, 2.90, 60.0],   # far above the male speaker's own pitch
    [3.30, 3.70, 43.0],
])


@pytest.mark.parametrize("speaker", ["male", "female"])
def test_stable_part_of_each_note_sits_at_its_pitch(bank, speaker):
    y = rv.render_voice_bank_singing(DETACHED, SR, np.random.default_rng(1), bank,
                                     speaker=speaker, vibrato=0.0)
    f0, t = _f0(y)
    for on, off, midi in DETACHED:
        d = off - on
        mid = f0[(t >= on + 0.3 * d) & (t <= off - 0.2 * d)]
        assert np.all(mid > 0), (on, midi)
        assert abs(np.median(_cents(mid, midi))) < 20, (on, midi)
        assert np.percentile(np.abs(_cents(mid, midi)), 90) < 35, (on, midi)


def test_vibrato_moves_around_the_note_pitch(bank):
    notes = np.array([[0.3, 2.3, 57.0], [2.6, 4.6, 52.0]])
    y = rv.render_voice_bank_singing(notes, SR, np.random.default_rng(4), bank, speaker="female",
                                     vibrato=1.0)
    f0, t = _f0(y)
    spread = []
    for on, off, midi in notes:
        c = _cents(f0[(t >= on + 0.7) & (t <= off - 0.2)], midi)
        assert abs(np.mean(c)) < 20
        spread.append(np.std(c))
    assert max(spread) > 5  # some vibrato (a note may draw none)


def test_voiced_inside_notes_and_silent_outside(bank):
    y = rv.render_voice_bank_singing(DETACHED, SR, np.random.default_rng(2), bank)
    f0, t = _f0(y)
    for on, off, _ in DETACHED:
        assert np.mean(f0[(t >= on + 0.03) & (t <= off - 0.03)] > 0) > 0.95
    ts = np.arange(len(y)) / SR
    far = np.ones(len(y), bool)
    for on, off, _ in DETACHED:
        far &= (ts < on - 0.3) | (ts > off + 0.1)
    assert np.all(y[far] == 0.0)
    assert np.max(np.abs(y)) == pytest.approx(0.5, abs=1e-6)


def test_onset_is_the_vowel_start_and_the_consonant_precedes_it(tmp_path):
    only_s = rv.find_voice_bank(make_bank(tmp_path / "ogg", names=("ㄙㄚ",), speakers=("3",)))
    notes = np.array([[0.5, 1.1, 50.0], [1.6, 2.2, 52.0]])
    y = rv.render_voice_bank_singing(notes, SR, np.random.default_rng(0), only_s, vibrato=0.0)
    f0, t = _f0(y)
    v = f0 > 0
    for on, off, _ in notes:
        first = t[np.flatnonzero(v & (t > on - 0.25))[0]]
        assert -0.04 <= first - on <= 0.02  # harvest's windows see voicing a little early
        # the 90-ms noise burst sits just before the onset, silence before it
        burst = y[int((on - 0.08) * SR):int((on - 0.02) * SR)]
        assert np.sqrt(np.mean(burst ** 2)) > 1e-3
        assert np.all(y[int((on - 0.25) * SR):int((on - 0.12) * SR)] == 0.0)


@pytest.mark.parametrize("melisma", [0.0, 1.0])
def test_legato_pairs_stay_voiced_through_the_change(bank, melisma):
    notes = np.array([
        [0.40, 0.90, 50.0],
        [0.90, 1.40, 53.0],   # joined (no gap)
        [1.42, 1.95, 48.0],   # joined (20-ms gap)
        [2.40, 2.90, 52.0],
    ])
    rng = np.random.default_rng(5)
    y = rv.render_voice_bank_singing(notes, SR, rng, bank, speaker="male", melisma=melisma,
                                     vibrato=0.0)
    f0, t = _f0(y)
    assert np.all(f0[(t >= 0.45) & (t <= 1.90)] > 0)  # voiced from note 1 to the end of note 3
    for on, off, midi in notes:
        d = off - on
        mid = f0[(t >= on + 0.35 * d) & (t <= off - 0.2 * d)]
        assert abs(np.median(_cents(mid, midi))) < 20
    # detached note 4 is a new syllable after silence
    assert np.all(y[int(2.0 * SR):int(2.15 * SR)] == 0.0)
    segments = rv._plan(notes, SR, np.random.default_rng(5), bank, 3.5, "male", None, melisma,
                        0.0, 1.0, None)
    assert [s.notes for s in segments] == [(0, 1, 2), (3,)]
    n_syllables = len(segments[0].syllables)
    assert n_syllables == (1 if melisma else 3)
    if not melisma:  # a new syllable after a legato join starts voiced (m, l or a vowel)
        assert all(s[0] in "ㄇㄌㄚ" for s in segments[0].syllables[1:])


def test_explicit_legato_flags_join_across_a_gap(bank):
    notes = np.array([[0.3, 0.8, 55.0], [0.95, 1.5, 57.0]])  # 150 ms apart
    f = lambda legato: _f0(rv.render_voice_bank_singing(  # noqa: E731
        notes, SR, np.random.default_rng(9), bank, speaker="female", legato=legato,
        melisma=1.0))
    f0, t = f([False, True])
    assert np.all(f0[(t >= 0.75) & (t <= 1.0)] > 0)
    f0, t = f(None)  # by the gap: detached
    assert np.mean(f0[(t >= 0.84) & (t <= 0.91)] > 0) < 0.5


def test_length_determinism_and_options(bank):
    notes = np.array([[0.2, 0.7, 60.0], [0.7, 1.3, 62.0], [1.6, 2.0, 59.0]])
    a = rv.render_voice_bank_singing(notes, SR, np.random.default_rng(11), bank, duration_s=3.0)
    b = rv.render_voice_bank_singing(notes, SR, np.random.default_rng(11), bank, duration_s=3.0)
    c = rv.render_voice_bank_singing(notes, SR, np.random.default_rng(12), bank, duration_s=3.0)
    assert a.dtype == np.float32 and len(a) == 3 * SR
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    rv.clear_analysis_cache()  # re-analysed from the files: still the same audio
    assert np.array_equal(a, rv.render_voice_bank_singing(notes, SR, np.random.default_rng(11),
                                                          bank, duration_s=3.0))
    d = rv.render_voice_bank_singing(notes, SR, 3, bank)  # int seed; default length
    assert len(d) == round((2.0 + 0.6) * SR)
    shifted = rv.render_voice_bank_singing(notes, SR, 11, bank, duration_s=3.0,
                                           formant_shift=0.1, speaker="male")
    assert np.isfinite(shifted).all() and np.max(np.abs(shifted)) > 0
    assert np.array_equal(rv.render_voice_bank_singing(np.zeros((0, 3)), SR, 0, bank, 1.0),
                          np.zeros(SR, np.float32))
    with pytest.raises(ValueError, match="one flag per note"):
        rv.render_voice_bank_singing(notes, SR, 0, bank, legato=[True])
    with pytest.raises(ValueError, match="no speaker"):
        rv.render_voice_bank_singing(notes, SR, 0, bank, speaker="child")


def test_corpus_songs_sung_by_recorded_voices(tmp_path, bank):
    """`CorpusStyle.voice_bank_share` sends songs to the recorded voices; a missing bank stops
    the corpus before any song is written."""
    import dataclasses

    from svt.synthetic.recorded_singing import (
        CorpusStyle,
        make_recorded_corpus,
        render_recorded_song,
    )

    style = dataclasses.replace(CorpusStyle.mixed(), voice_bank_share=1.0,
                                voice_bank_folder=str(bank.root),
                                accompaniment_probability=0.0)
    notes, audio, info = render_recorded_song([1, 2], 6.0, style)
    assert info["voice"] == "recorded" and len(notes) and len(audio) == 6 * SR
    f0, t = _f0(audio.astype(np.float64))
    checked = 0
    for on, off, midi in notes:
        middle = (t > on + 0.4 * (off - on)) & (t < off - 0.3 * (off - on)) & (f0 > 0)
        if middle.sum() >= 5:  # the sung pitch is the annotated one (after the recording chain)
            assert abs(np.median(_cents(f0[middle], midi))) < 35
            checked += 1
    assert checked >= len(notes) // 2
    additive = dataclasses.replace(style, voice_bank_share=0.0)
    assert render_recorded_song([1, 2], 6.0, additive)[2]["voice"] != "recorded"
    missing = dataclasses.replace(style, voice_bank_folder=str(tmp_path / "nowhere"))
    with pytest.raises(rv.VoiceBankNotFoundError, match="apt-get install gcin-voice"):
        make_recorded_corpus(tmp_path / "corpus", 2, style=missing, progress=False)
    assert not list((tmp_path / "corpus").glob("*.wav"))
