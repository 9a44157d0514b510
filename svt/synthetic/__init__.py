"""Generated data and test fixtures, kept apart from the library: synthetic singing corpora
(with accompaniment and lip videos), a fake MUSAN, fabricated fairseq checkpoints, tiny models
built from configs, and the per-frame reference loops of the original algorithms."""
