"""Networks: the encoder interface (`encoder.FrameEncoder`), SSL speech encoders, the AV-HuBERT
visual encoder, the frame heads and loss, the RCA fusion, and the audio-visual model."""
