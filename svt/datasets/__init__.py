"""Data preparation: one module per dataset layout, and the steps they share.

Every dataset goes through the same steps (docs/original-recipes.md §2; "Adding a dataset" in
docs/architecture.md): find each song's vocals and notes and check that they belong together
(`svt.datasets.layout`), extract the vocals of mixtures where asked (`svt.datasets.separation`),
then convert the audio to 16 kHz mono when it is not, save the frame labels
(`svt.notes.labels.notes_to_frames`) and the note list, and write one CSV row per utterance of
`dur_threshold` seconds (`svt.datasets.songs`). The dataset modules only find the songs:

* `mir_st500.prepare_mir_st500`: `Annotations.json` + `wav16kHz/{train,test}/<id>/vocals.wav`,
  plus a seeded validation hold-out of training songs (the original never created its
  `mir_st500_valid.csv`);
* `tonas.prepare_tonas`: TONAS as distributed (`<stem>.wav` beside `<stem>.notes.Corrected`, in
  any subfolders), or the original's converted layout;
* `ismir2014.prepare_ismir2014`: wav files and ground-truth note files matched by song name, or
  the converted layout;
* `ssvd.prepare_ssvd`: `<id>.flac|.wav` beside `<id>.txt` (SSVD, and the shipped model's
  synthetic corpus);
* `n20emv2.prepare_n20emv2_audio`: `annotations.json` (`{entry: {"midi", "split"}}`) +
  `data/<entry>/vocals.wav`, and `mix_train.csv` (MIR-ST500 + N20EMv2 training rows);
* `n20emv2.prepare_n20emv2_video`: the same `annotations.json` + `data/<entry>/video_50fps.npy`
  lip videos -> `n20em_video_{train,valid,test}.csv` (VIDEO_CSV_COLUMNS), labels at the video's
  50 fps;
* `musan`: MUSAN noise clips and the noisy N20EMv2 mixtures of the audio-visual recipe.

Every prepare function takes `data_folder` (the dataset, never written to), `prepare_folder`
(where everything goes, the recipes' YAML key of the same name), `dur_threshold` and
`label_frame_rate` (the YAML keys again), `strict` and `overwrite`, and returns
`{csv_name: path}`. `arguments` holds the prepare scripts' shared command line. Dataset names (CSV
`dataset` column, ID prefix, folder names): `mir_st500`, `tonas`, `ismir2014`, `ssvd`, `n20emv2`.

Differences from the original preparers (docs/original-recipes.md §9):

* a song shorter than D/2 gets one utterance instead of being silently dropped (bug 9.6);
* CSV IDs are `<dataset>_<song>_<utter_id>`, so MIR-ST500 and N20EMv2 rows never collide in
  `mix_train.csv` (bug 9.8); the CSVs also carry `song` and `dataset` columns;
* the labels are where the CSV says they are (bug 9.2) and no CSV depends on the current directory
  (bug 9.4);
* stereo or non-16 kHz vocals are converted instead of failing an assertion;
* inputs are validated up front (missing audio, unmatched songs, empty or invalid note lists,
  annotations that do not fit the audio) with errors naming the dataset, song and file;
  `strict=False` skips such songs with a warning instead.
"""
