"""Unsupervised pretraining on raw text: word vectors (word2vec), the ``attnrnn pretrain``
command, and a language model's encoder transferred into a classifier. The language
model itself is a task (:mod:`attnrnn.tasks.language_model`)."""
