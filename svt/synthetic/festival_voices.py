"""Festival's diphone voices as a source of sung syllables for the recorded-voice renderer.

A third voice source for the synthetic training corpus, beside additive synthesis
(`svt.synthetic.singing`) and gcin-voice's recorded syllables (`svt.synthetic.recorded_voices`).
Festival (Debian main: ``apt-get install festival`` plus a ``festvox-*`` voice) sings a marked-up
score with its diphone voices (``text2wave -mode singing``): real recorded diphones of a speaker,
joined and pitch-shifted by residual-excited LPC. Here it sings one syllable per file, held at a
fixed, comfortable pitch (120 Hz for the male voices, 220 Hz for the female one: these voices
break down above about 500 Hz, so they are rendered low and the melody's pitch is imposed later),
into a bank laid out like gcin-voice's (``<folder>/<syllable>/<speaker>.wav``). The WORLD renderer
of `svt.synthetic.recorded_voices` then treats those files exactly as it treats the recorded
Mandarin syllables: analysed, the vowel stretched to each note, the melody's f0 imposed (scoops,
portamento, vibrato, drift), legato and melismas voiced through.

Voices (Debian main; each package's ``/usr/share/doc/<package>/copyright``):

======  =====================  ==============================  ==================================
name    package                speaker                         licence
======  =====================  ==============================  ==================================
kal     festvox-kallpc16k      American English, male          free, with notice (Alan W Black
                                                               and Kevin Lenzo 1998; CSTR)
ked     festvox-kdlpc16k       American English, male          free, with notice (CSTR,
                                                               University of Edinburgh 1997)
lp      festvox-italp16k       Italian, female                 GPL-2 or later (IFM Development
                                                               Team, ISTC-SPFD CNR / ITC-irst)
pc      festvox-itapc16k       Italian, male                   GPL-2 or later (same)
======  =====================  ==============================  ==================================

"Free, with notice": use, modification and distribution are allowed provided the copyright
notice stays, modifications are marked and the authors' names are not used for endorsement.
As with gcin-voice, nothing rendered from these voices is distributed by this project (they
are training material only); whoever distributes such audio takes on these conditions.

Public API
----------
``FESTIVAL_VOICES``          name -> `FestivalVoice` (package, syllables, pitch, licence)
``split_speakers``           speaker names -> (gcin-voice's, Festival's)
``check_festival``           `FestivalNotFoundError` unless text2wave and the voices are there
``singing_markup``           the SINGING XML text2wave sings for one held syllable
``render_festival_bank``     writes the bank (resumable, atomic) and returns its folder
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union
from xml.sax.saxutils import escape

from svt.errors import SvtUserError
from svt.fileio import atomic_path

#: One-syllable English words and syllables (Festival's English lexicon knows them all): open
#: vowels, the consonants singers' lyrics start with, voiced starts for legato.
ENGLISH_SYLLABLES: Tuple[str, ...] = tuple(
    "la da na ma ba ta ka pa sa fa ha ya wa ra ga lee lo loo no me oh ah ooh see go sun you "
    "star heart light night day my love dream way home song rain blue".split())
#: Italian syllables, read by the Italian voices' own letter-to-sound rules.
ITALIAN_SYLLABLES: Tuple[str, ...] = tuple(
    "la da na ma ba ta ca pa sa fa va ra lo no mi re do sol si tu me te ne le lu mo so vo "
    "ri".split())
#: How long each syllable is held in the bank (s): long enough for a steady vowel to stretch.
SYLLABLE_SECONDS = 0.6


@dataclasses.dataclass(frozen=True)
class FestivalVoice:
    """One Festival diphone voice: how to call it and what it sings."""

    festival_name: str  # the voice's Scheme name: text2wave -eval "(voice_<festival_name>)"
    package: str  # the Debian package that installs it
    folder: str  # where the package installs it, under /usr/share/festival/voices
    description: str
    licence: str
    credit: str
    syllables: Tuple[str, ...]
    pitch_hz: float  # the pitch the bank is rendered at
    f0_range_hz: Tuple[float, float]  # the WORLD analysis's f0 search range


_EDINBURGH = ("free to use, modify and distribute with the copyright notice kept and "
              "modifications marked (Festival's licence)")
_IFM = "GPL-2 or later"
FESTIVAL_VOICES: Dict[str, FestivalVoice] = {
    "kal": FestivalVoice("kal_diphone", "festvox-kallpc16k", "english/kal_diphone",
                         "American English, male", _EDINBURGH,
                         "Alan W Black and Kevin Lenzo 1998 (CSTR, University of Edinburgh)",
                         ENGLISH_SYLLABLES, 120.0, (60.0, 400.0)),
    "ked": FestivalVoice("ked_diphone", "festvox-kdlpc16k", "english/ked_diphone",
                         "American English, male", _EDINBURGH,
                         "Centre for Speech Technology Research, University of Edinburgh 1997",
                         ENGLISH_SYLLABLES, 120.0, (60.0, 400.0)),
    "lp": FestivalVoice("lp_diphone", "festvox-italp16k", "italian/lp_diphone",
                        "Italian, female", _IFM,
                        "IFM Development Team (Piero Cosi, Carlo Drioli, Graziano Tisato; "
                        "ISTC-SPFD CNR and ITC-irst) 2008", ITALIAN_SYLLABLES, 220.0,
                        (100.0, 600.0)),
    "pc": FestivalVoice("pc_diphone", "festvox-itapc16k", "italian/pc_diphone",
                        "Italian, male", _IFM,
                        "IFM Development Team (Piero Cosi, Carlo Drioli, Graziano Tisato; "
                        "ISTC-SPFD CNR and ITC-irst) 2008", ITALIAN_SYLLABLES, 120.0,
                        (60.0, 400.0)),
}
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")


def split_speakers(names: Iterable[str]) -> Tuple[List[str], List[str]]:
    """`(others, festival)`: speaker names split into those of other banks (gcin-voice's) and
    Festival's voices, each in the order given."""
    names = list(names)
    return ([n for n in names if n not in FESTIVAL_VOICES],
            [n for n in names if n in FESTIVAL_VOICES])


class FestivalNotFoundError(SvtUserError, FileNotFoundError):
    """Festival's text2wave, or one of the voices asked for, is not installed."""


def _voices(names: Iterable[str]) -> Dict[str, FestivalVoice]:
    names = list(names)
    unknown = [n for n in names if n not in FESTIVAL_VOICES]
    if unknown:
        raise ValueError(f"unknown Festival voices {unknown}; choose from "
                         f"{sorted(FESTIVAL_VOICES)}")
    return {n: FESTIVAL_VOICES[n] for n in names}


def check_festival(names: Sequence[str], voice_dir: Union[str, Path] = FESTIVAL_VOICE_DIR) -> str:
    """The path of text2wave, after checking that it and the voices `names` are installed
    (`FestivalNotFoundError` naming the Debian packages to install otherwise)."""
    voices = _voices(names)
    text2wave = shutil.which("text2wave")
    packages = " ".join(["festival"] + [v.package for v in voices.values()])
    if text2wave is None:
        raise FestivalNotFoundError(
            f"Festival's text2wave is not installed; `apt-get install {packages}` (Debian "
            "main) installs it with the voices asked for")
    missing = [v for v in voices.values() if not (Path(voice_dir) / v.folder).is_dir()]
    if missing:
        raise FestivalNotFoundError(
            f"Festival voices not installed: {', '.join(v.festival_name for v in missing)} "
            f"(not in {voice_dir}); `apt-get install "
            f"{' '.join(v.package for v in missing)}`")
    return text2wave


def singing_markup(syllable: str, pitch_hz: float,
                   seconds: float = SYLLABLE_SECONDS) -> str:
    """Festival's SINGING markup for one syllable held at `pitch_hz` for `seconds`, with a short
    rest on each side. FREQ rather than NOTE: Festival's note names are an octave off the
    usual convention (its "A5" is 440 Hz)."""
    return ('<?xml version="1.0"?>\n'
            '<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
            '"Singing.v0_1.dtd" []>\n'
            '<SINGING BPM="60">\n'
            '<REST BEATS="0.15"></REST>\n'
            f'<DURATION SECONDS="{seconds:g}"><PITCH FREQ="{pitch_hz:g}">{escape(syllable)}'
            '</PITCH></DURATION>\n'
            '<REST BEATS="0.15"></REST>\n'
            '</SINGING>\n')


def render_festival_bank(folder: Union[str, Path], names: Sequence[str],
                         syllables: Optional[Sequence[str]] = None,
                         progress: Optional[callable] = print,
                         voice_dir: Union[str, Path] = FESTIVAL_VOICE_DIR) -> Path:
    """Sing each voice's syllables (`syllables`: these instead) into
    `<folder>/<syllable>/<name>.wav` (16 kHz mono, as the voices render). Files already there are
    kept, so an interrupted run resumes; each file is written atomically. About 0.2 s of CPU
    per file (40 syllables a voice for English, 29 for Italian). Returns `folder`."""
    bad = [s for s in syllables or () if not (isinstance(s, str) and s.isalpha())]
    if bad:  # each names a folder, and Festival reads it as a word
        raise ValueError(f"syllables must be words of letters only, got {bad}")
    text2wave = check_festival(names, voice_dir)
    folder = Path(folder)
    for name, voice in _voices(names).items():
        done = 0
        for syllable in (voice.syllables if syllables is None else syllables):
            target = folder / syllable / f"{name}.wav"
            if target.is_file():
                continue
            with atomic_path(target) as tmp:
                markup = Path(f"{tmp}.xml")
                markup.write_text(singing_markup(syllable, voice.pitch_hz))
                try:
                    result = subprocess.run(
                        [text2wave, "-mode", "singing", "-eval", f"(voice_{voice.festival_name})",
                         str(markup), "-o", str(tmp)], capture_output=True, text=True)
                finally:
                    markup.unlink(missing_ok=True)
                if result.returncode != 0 or Path(tmp).stat().st_size <= 44:
                    raise RuntimeError(
                        f"Festival could not sing {syllable!r} with {voice.festival_name} "
                        f"(exit status {result.returncode}): {result.stderr.strip()[-300:]}")
            done += 1
        if progress is not None and done:
            progress(f"Festival voice {name}: {done} syllables rendered into {folder}")
    return folder
