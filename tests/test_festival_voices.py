"""`svt.synthetic.festival_voices`: Festival's diphone voices as a syllable bank for WORLD.

CI has no Festival, so the bank writer is driven by a stand-in `text2wave` (a script on PATH that
sings a harmonic tone at the pitch the markup asks for and logs its arguments); the test with
the real Festival runs only where it is installed.
"""
import os
import shutil
import stat
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import soundfile as sf

from svt.synthetic import festival_voices as fv
from svt.synthetic import recorded_voices as rv

FAKE_TEXT2WAVE = """\
#!{python}
# A stand-in for Festival's text2wave: sings the markup's FREQ for its SECONDS as a harmonic
# tone (16 kHz), after a short rest; logs its arguments; fails when FAKE_TEXT2WAVE_FAIL is set.
import os, sys, xml.etree.ElementTree as ET
import numpy as np, soundfile as sf
args = sys.argv[1:]
with open(os.environ["FAKE_TEXT2WAVE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if os.environ.get("FAKE_TEXT2WAVE_FAIL"):
    sys.stderr.write("SIOD ERROR: unbound variable\\n")
    sys.exit(1)
markup = ET.parse(args[args.index("-o") - 1]).getroot()
duration = markup.find("DURATION")
hz, seconds = float(duration.find("PITCH").get("FREQ")), float(duration.get("SECONDS"))
t = np.arange(int(seconds * 16000)) / 16000
tone = sum(np.sin(2 * np.pi * h * hz * t) / h for h in range(1, 12)) * np.minimum(1, t / 0.02)
audio = np.concatenate([np.zeros(2400), 0.3 * tone / np.max(np.abs(tone)), np.zeros(2400)])
sf.write(args[args.index("-o") + 1], audio, 16000, subtype="PCM_16", format="WAV")
"""


@pytest.fixture
def fake_festival(tmp_path, monkeypatch):
    """A stand-in text2wave on PATH and a voice folder holding every voice; returns the log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "text2wave"
    script.write_text(FAKE_TEXT2WAVE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "text2wave.log"
    monkeypatch.setenv("FAKE_TEXT2WAVE_LOG", str(log))
    voices = tmp_path / "voices"
    for voice in fv.FESTIVAL_VOICES.values():
        (voices / voice.folder).mkdir(parents=True)
    return log, voices


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_singing_markup_holds_one_syllable_at_the_pitch_asked_for():
    root = ET.fromstring(fv.singing_markup("love", 220.0, 0.6).split("[]>", 1)[1])
    assert root.tag == "SINGING" and root.get("BPM") == "60"
    assert [child.tag for child in root] == ["REST", "DURATION", "REST"]
    duration = root.find("DURATION")
    assert duration.get("SECONDS") == "0.6"
    assert duration.find("PITCH").get("FREQ") == "220" and duration.find("PITCH").text == "love"
    # A word with markup characters stays one word of text.
    escaped = ET.fromstring(fv.singing_markup("a&b<", 120.0).split("[]>", 1)[1])
    assert escaped.find("DURATION/PITCH").text == "a&b<"


def test_missing_festival_or_voice_names_the_debian_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(fv.FestivalNotFoundError,
                       match="apt-get install festival festvox-kallpc16k festvox-italp16k"):
        fv.check_festival(["kal", "lp"], tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/text2wave")
    (tmp_path / "english" / "kal_diphone").mkdir(parents=True)
    assert fv.check_festival(["kal"], tmp_path) == "/usr/bin/text2wave"
    with pytest.raises(FileNotFoundError, match=r"lp_diphone .*apt-get install festvox-italp16k"):
        fv.check_festival(["kal", "lp"], tmp_path)
    with pytest.raises(ValueError, match=r"unknown Festival voices \['kate'\]"):
        fv.check_festival(["kate"], tmp_path)


def test_bank_is_sung_once_per_syllable_and_resumes(tmp_path, fake_festival):
    log, voices = fake_festival
    bank = tmp_path / "bank"
    fv.render_festival_bank(bank, ["kal", "lp"], progress=None, voice_dir=voices)
    kal, lp = fv.FESTIVAL_VOICES["kal"], fv.FESTIVAL_VOICES["lp"]
    assert sorted(p.parent.name for p in bank.glob("*/kal.wav")) == sorted(kal.syllables)
    assert sorted(p.parent.name for p in bank.glob("*/lp.wav")) == sorted(lp.syllables)
    made = calls(log)
    assert len(made) == len(kal.syllables) + len(lp.syllables)
    assert all(c.startswith("-mode singing -eval (voice_kal_diphone) ") for c in made[:40])
    assert all("(voice_lp_diphone)" in c for c in made[40:])
    assert not [p for p in bank.rglob("*") if p.is_file() and p.suffix != ".wav"]  # no leftovers
    # Resumed: nothing is sung again, except a file that went missing.
    (bank / "la" / "kal.wav").unlink()
    fv.render_festival_bank(bank, ["kal", "lp"], progress=None, voice_dir=voices)
    assert calls(log)[len(made):] == [calls(log)[-1]] and "(voice_kal_diphone)" in calls(log)[-1]
    # Each voice sings at its own pitch, which the WORLD analysis (with the voice's f0 range)
    # finds in the file.
    found = rv.find_voice_bank(bank, ["kal", "lp"])
    assert found.speaker_names == ("kal", "lp")
    assert found.speaker("lp").licence == "GPL-2 or later"
    try:
        rv.load_world()
    except ImportError:  # pragma: no cover - pyworld is pinned in requirements.txt
        return
    for name in ("kal", "lp"):
        analysis = rv.analyse_syllable(bank / "ma" / f"{name}.wav", 16000)
        assert analysis.usable
        assert analysis.natural_f0_hz == pytest.approx(fv.FESTIVAL_VOICES[name].pitch_hz,
                                                       rel=0.02)


def test_a_failing_festival_stops_with_its_message_and_leaves_no_file(tmp_path, fake_festival,
                                                                     monkeypatch):
    log, voices = fake_festival
    monkeypatch.setenv("FAKE_TEXT2WAVE_FAIL", "1")
    with pytest.raises(RuntimeError, match=r"could not sing 'la' with kal_diphone \(exit status "
                                           r"1\): SIOD ERROR: unbound variable"):
        fv.render_festival_bank(tmp_path / "bank", ["kal"], progress=None, voice_dir=voices)
    assert not [p for p in (tmp_path / "bank").rglob("*") if p.is_file()]
    with pytest.raises(ValueError, match="letters only"):
        fv.render_festival_bank(tmp_path / "bank", ["kal"], syllables=["la", "../x"],
                                voice_dir=voices)


def test_festival_and_gcin_speakers_join_in_one_bank(tmp_path, fake_festival):
    log, voices = fake_festival
    fv.render_festival_bank(tmp_path / "festival", ["ked"], syllables=["la", "no"],
                            progress=None, voice_dir=voices)
    gcin = tmp_path / "gcin" / "ㄇㄚ"
    gcin.mkdir(parents=True)
    sf.write(gcin / "5.ogg", np.zeros(4410), 44100, format="OGG", subtype="VORBIS")
    bank = rv.find_voice_bank([tmp_path / "gcin", tmp_path / "festival"], ["female", "ked"])
    assert bank.speaker_names == ("female", "ked") and bank.root == tmp_path / "gcin"
    assert bank.speaker("ked").syllables == ("la", "no")
    assert "University of Edinburgh" in bank.speaker("ked").credit
    # Every speaker asked for must be there.
    with pytest.raises(rv.VoiceBankNotFoundError, match=r"speakers \['kal'\] are missing .*"
                                                        r"render_festival_bank"):
        rv.find_voice_bank([tmp_path / "gcin", tmp_path / "festival"], ["female", "ked", "kal"])
    with pytest.raises(rv.VoiceBankNotFoundError, match="no Festival syllables found in"):
        rv.find_voice_bank([tmp_path / "gcin"], ["kal"])


def _real_festival_voice():
    try:
        fv.check_festival(["kal"])
        return True
    except fv.FestivalNotFoundError:
        return False


@pytest.mark.skipif(not _real_festival_voice(),
                    reason="Festival and its kal voice are not installed (Debian: festival "
                           "festvox-kallpc16k)")
def test_real_festival_sings_at_the_pitch_asked_for(tmp_path):  # pragma: no cover - Debian extra
    bank = fv.render_festival_bank(tmp_path, ["kal"], syllables=["ma", "la"], progress=None)
    audio, sr = sf.read(bank / "ma" / "kal.wav")
    assert sr == 16000 and len(audio) > 0.5 * sr
    pw = rv.load_world()
    f0, _ = pw.harvest(audio.astype(np.float64), sr, f0_floor=60.0, f0_ceil=400.0)
    assert np.median(f0[f0 > 0]) == pytest.approx(120.0, rel=0.03)


def test_corpus_songs_sung_by_a_festival_voice(tmp_path, fake_festival):
    import dataclasses
    import json

    from svt.synthetic.recorded_singing import CorpusStyle, make_recorded_corpus

    log, voices = fake_festival
    try:
        rv.load_world()
    except ImportError:  # pragma: no cover - pyworld is pinned in requirements.txt
        pytest.skip("pyworld is not installed")
    bank = fv.render_festival_bank(tmp_path / "festival", ["kal"], syllables=["la", "ma", "no"],
                                   progress=None, voice_dir=voices)
    style = dataclasses.replace(CorpusStyle(), voice_bank_share=1.0, voice_bank_speakers=("kal",),
                                festival_bank_folder=str(bank), recording=False,
                                accompaniment_probability=0.0)
    corpus = make_recorded_corpus(tmp_path / "corpus", 1, seed=3, duration_range=(6.0, 6.5),
                                  style=style, progress=False)
    audio, sr = sf.read(corpus / "song00000.wav")
    notes = np.loadtxt(corpus / "song00000.txt", ndmin=2)
    assert sr == 16000 and len(notes) > 0
    # Sung inside the notes, silent well away from them (the WORLD renderer's contract).
    t = np.arange(len(audio)) / sr
    inside = np.zeros(len(audio), bool)
    for on, off, _ in notes:
        inside |= (t >= on) & (t < off)
    far = np.ones(len(audio), bool)
    for on, off, _ in notes:
        far &= (t < on - 0.3) | (t > off + 0.1)
    assert np.sqrt(np.mean(audio[inside] ** 2)) > 0.01
    assert np.max(np.abs(audio[far]), initial=0.0) < 1e-3
    described = json.loads((corpus / "corpus.json").read_text())["style"]
    assert described["voice_bank_speakers"] == ["kal"]
    assert described["festival_bank_folder"] == str(bank)
    # Without the bank's folder the Festival voices cannot be found.
    with pytest.raises(ValueError, match=r"Festival voices \['kal'\] need festival_bank_folder"):
        make_recorded_corpus(tmp_path / "other", 1, seed=3, progress=False,
                             style=dataclasses.replace(style, festival_bank_folder=None))
