"""Corpus generation and preparation: the synthetic eSpeak NG multi-speaker corpus and the
shared code of the real-corpus preparation scripts in ``local/``."""
