import json

import mir_eval
import numpy as np
import pytest
from mir_eval.util import midi_to_hz

from svt.cli.score import main as score_main
from svt.notes.scoring import METRIC_KEYS, aggregate, match_counts, score_song

MIR_EVAL_KEYS = {
    "COnPOff": ("Precision", "Recall", "F-measure"),
    "COnP": ("Precision_no_offset", "Recall_no_offset", "F-measure_no_offset"),
    "COn": ("Onset_Precision", "Onset_Recall", "Onset_F-measure"),
    "COff": ("Offset_Precision", "Offset_Recall", "Offset_F-measure"),
}


def mir_eval_scores(ref, est, **kw):
    ref, est = np.asarray(ref, float), np.asarray(est, float)
    out = mir_eval.transcription.evaluate(ref[:, :2], midi_to_hz(ref[:, 2]), est[:, :2],
                                          midi_to_hz(est[:, 2]), **kw)
    return {f"{m}_{s}": out[k] for m, keys in MIR_EVAL_KEYS.items()
            for s, k in zip(("precision", "recall", "f1"), keys)}


def perturbed(ref, rng):
    est = np.array(ref, dtype=float)
    est[:, 0] = np.maximum(est[:, 0] + rng.normal(0, 0.04, len(est)), 0)
    est[:, 1] += rng.normal(0, 0.08, len(est))
    est[:, 1] = np.maximum(est[:, 1], est[:, 0] + 0.01)
    est[:, 2] += rng.choice([0, 0, 0, 1, -0.3], len(est))
    return est[rng.random(len(est)) > 0.1]


def test_matches_mir_eval_on_parity_songs(parity_cases):
    for case in parity_cases[:4]:
        ref, est = case["notes"], case["est_notes"]
        ours = score_song(ref, est)
        theirs = mir_eval_scores(ref, est, onset_tolerance=0.05, pitch_tolerance=50)
        assert set(ours) == set(METRIC_KEYS)
        for key in METRIC_KEYS:
            assert ours[key] == pytest.approx(theirs[key], abs=1e-12), key


def test_tolerances_are_passed_through():
    rng = np.random.default_rng(3)
    ref = [[i * 0.5, i * 0.5 + 0.3, 60 + i % 5] for i in range(40)]
    est = perturbed(ref, rng)
    kw = dict(onset_tolerance=0.1, pitch_tolerance=80, offset_ratio=0.3, offset_min_tolerance=0.1)
    ours, theirs = score_song(ref, est, **kw), mir_eval_scores(ref, est, **kw)
    for key in METRIC_KEYS:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-12), key
    assert score_song(ref, est)["COn_f1"] < ours["COn_f1"]


def test_hand_computed_scores():
    ref = [[0.0, 1.0, 60], [2.0, 3.0, 62]]
    # est 1: exact; est 2: onset ok, wrong pitch (64); est 3: spurious.
    est = [[0.01, 1.02, 60], [2.03, 3.5, 64], [5.0, 6.0, 60]]
    s = score_song(ref, est)
    assert s["COnPOff_precision"] == pytest.approx(1 / 3)
    assert s["COnPOff_recall"] == pytest.approx(1 / 2)
    assert s["COnPOff_f1"] == pytest.approx(0.4)
    assert s["COn_recall"] == 1.0 and s["COn_precision"] == pytest.approx(2 / 3)
    assert s["COnP_f1"] == pytest.approx(0.4)
    assert s["COff_recall"] == 0.5  # 3.5 is beyond max(0.2 s, 0.05 s) of 3.0


def test_empty_estimate_scores_zero_and_empty_reference_is_an_error():
    s = score_song([[0.0, 1.0, 60]], [])
    assert all(v == 0.0 for v in s.values())
    with pytest.raises(ValueError, match="reference has no notes"):
        score_song([], [[0.0, 1.0, 60]])


def test_mean_and_pooled_aggregation():
    a = match_counts([[0, 1, 60], [2, 3, 60]], [[0, 1, 60], [2, 3, 60]])  # 2/2
    b = match_counts([[0, 1, 60], [2, 3, 60], [4, 5, 60], [6, 7, 60]], [[0, 1, 60], [9, 10, 60]])
    agg = aggregate({"a": a, "b": b})
    # mean: precision (1 + 0.5) / 2, recall (1 + 0.25) / 2; pooled: 3 matched of 4 est, 6 ref.
    assert agg["mean"]["COnPOff_precision"] == pytest.approx(0.75)
    assert agg["mean"]["COnPOff_recall"] == pytest.approx(0.625)
    assert agg["pooled"]["COnPOff_precision"] == pytest.approx(0.75)
    assert agg["pooled"]["COnPOff_recall"] == pytest.approx(0.5)
    assert agg["pooled"]["COnPOff_f1"] == pytest.approx(0.6)


def write_mirex(path, notes):
    with open(path, "w") as f:
        f.write("# onset offset hz\n")
        for a, b, p in notes:
            f.write(f"{a:.6f}\t{b:.6f}\t{midi_to_hz(p):.6f}\n")


def test_svt_score_cli_reproduces_mir_eval_on_mirex_folders(tmp_path, capsys):
    rng = np.random.default_rng(5)
    (tmp_path / "ref").mkdir(), (tmp_path / "est").mkdir()
    expected = {}
    for i in range(3):
        ref = np.array([[j * 0.7 + i, j * 0.7 + i + 0.5, 55 + (j * 3) % 12] for j in range(30)])
        est = perturbed(ref, rng)
        write_mirex(tmp_path / "ref" / f"song{i}.txt", ref)
        write_mirex(tmp_path / "est" / f"song{i}.txt", est)
        # mir_eval reading the same files, scored by mir_eval itself.
        r_int, r_hz = mir_eval.io.load_valued_intervals(str(tmp_path / "ref" / f"song{i}.txt"))
        e_int, e_hz = mir_eval.io.load_valued_intervals(str(tmp_path / "est" / f"song{i}.txt"))
        out = mir_eval.transcription.evaluate(r_int, r_hz, e_int, e_hz)
        expected[f"song{i}"] = out
    write_mirex(tmp_path / "est" / "extra.txt", [[0, 1, 60]])
    assert score_main([str(tmp_path / "ref"), str(tmp_path / "est"), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "extra" in captured.err and result["missing"]["estimate_only"] == ["extra"]
    for song, out in expected.items():
        for metric, keys in MIR_EVAL_KEYS.items():
            assert result["songs"][song][f"{metric}_f1"] == pytest.approx(out[keys[2]], abs=1e-9)
            assert result["songs"][song][f"{metric}_precision"] == pytest.approx(out[keys[0]],
                                                                                abs=1e-9)
    mean = np.mean([out["F-measure"] for out in expected.values()])
    assert result["mean"]["COnPOff_f1"] == pytest.approx(mean, abs=1e-9)
    assert set(result["pooled"]) == set(METRIC_KEYS)


def test_svt_score_dict_file_against_folder_and_table(tmp_path, capsys):
    ref = {"1": [[0.0, 1.0, 60], [1.5, 2.0, 62]], "2": [[0.0, 0.5, 70]]}
    (tmp_path / "Annotations.json").write_text(json.dumps(ref))
    (tmp_path / "est").mkdir()
    (tmp_path / "est" / "1.json").write_text(json.dumps(ref["1"]))
    (tmp_path / "est" / "1.csv").write_text("onset,offset,pitch\n9,10,40\n")  # json preferred
    assert score_main([str(tmp_path / "Annotations.json"), str(tmp_path / "est")]) == 0
    out, err = capsys.readouterr()
    assert "mean F1" in out and "100.00" in out
    assert "only in the reference" in err and "2" in err


def test_svt_score_errors_are_clear(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("[[0, 1, 60], [2, 1, 60]]")
    (tmp_path / "ok.json").write_text("[[0, 1, 60]]")
    assert score_main([str(tmp_path / "ok.json"), str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "note 1" not in err and "offset <= onset" in err
    assert score_main([str(tmp_path / "ok.json"), str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_svt_score_and_its_help_import_no_torch():
    """`svt-score` (and `--help`) start without torch, transformers or SpeechBrain."""
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['svt-score', '--help']\n"
            "from svt.cli.score import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "heavy = [m for m in ('torch', 'transformers', 'speechbrain') if m in sys.modules]\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: svt-score" in result.stdout
