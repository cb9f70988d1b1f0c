"""Dataset recipes: turn public corpora into attnrnn manifests and parallel files."""
