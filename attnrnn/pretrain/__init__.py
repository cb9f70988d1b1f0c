"""Unsupervised pretraining on raw text: word vectors and language models."""
