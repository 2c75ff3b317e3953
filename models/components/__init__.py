"""Shared building blocks of the generative recommenders (tokenizer, seq2seq, decoding)."""
