"""Tests of reading and writing word2vec / GloVe text vectors."""

from __future__ import annotations

import gzip

import pytest
import torch

from attnrnn.data.vectors import load_word_vectors, read_vector_words, save_word_vectors
from attnrnn.data.vocab import Vocab
from attnrnn.errors import DataError

GLOVE = """\
the 0.1 0.2 0.3
movie 1.0 -1.0 0.5
unused 9 9 9
good -0.5 0.25 2
"""
# vocab: <pad> <unk> the movie good bad -> 3 of 4 words found
VOCAB = Vocab(["<pad>", "<unk>", "the", "movie", "good", "bad"])


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_glove_file_without_header(tmp_path):
    matrix, coverage = load_word_vectors(write(tmp_path / "glove.txt", GLOVE), VOCAB)
    assert matrix.shape == (6, 3)
    assert matrix.dtype == torch.float32
    assert coverage == pytest.approx(3 / 4)
    torch.testing.assert_close(matrix[VOCAB.index("the")], torch.tensor([0.1, 0.2, 0.3]))
    torch.testing.assert_close(matrix[VOCAB.index("good")], torch.tensor([-0.5, 0.25, 2.0]))
    assert torch.equal(matrix[VOCAB.pad_index], torch.zeros(3))
    assert matrix[VOCAB.index("bad")].abs().sum() > 0  # randomly initialised
    assert matrix[VOCAB.unk_index].abs().sum() > 0


def test_word2vec_header_is_skipped(tmp_path):
    path = write(tmp_path / "w2v.txt", "4 3\n" + GLOVE)
    matrix, coverage = load_word_vectors(path, VOCAB)
    assert coverage == pytest.approx(3 / 4)
    torch.testing.assert_close(matrix[VOCAB.index("movie")], torch.tensor([1.0, -1.0, 0.5]))


def test_gzip_file(tmp_path):
    path = tmp_path / "glove.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write(GLOVE)
    matrix, coverage = load_word_vectors(path, VOCAB)
    assert coverage == pytest.approx(3 / 4)
    torch.testing.assert_close(matrix[VOCAB.index("the")], torch.tensor([0.1, 0.2, 0.3]))


def test_missing_rows_follow_the_generator_and_the_spread_of_found_vectors(tmp_path):
    path = write(tmp_path / "glove.txt", GLOVE)
    first, _ = load_word_vectors(path, VOCAB, generator=torch.Generator().manual_seed(3))
    second, _ = load_word_vectors(path, VOCAB, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    vocab = Vocab(["<pad>", "<unk>", "the", *[f"missing{i}" for i in range(2000)]])
    matrix, coverage = load_word_vectors(path, vocab, generator=torch.Generator().manual_seed(0))
    assert coverage == pytest.approx(1 / 2001)
    found_std = torch.tensor([0.1, 0.2, 0.3]).std(correction=0)
    assert matrix[3:].std().item() == pytest.approx(found_std.item(), rel=0.05)
    assert matrix[3:].mean().item() == pytest.approx(0.0, abs=0.01)


def test_lowercase_matches_cased_words_but_prefers_exact_ones(tmp_path):
    path = write(tmp_path / "cased.txt", "The 1 1\nMovie 2 2\nthe 3 3\nMOVIE 4 4\n")
    vocab = Vocab(["<pad>", "<unk>", "the", "movie"])
    matrix, coverage = load_word_vectors(path, vocab, lowercase=True)
    assert coverage == 1.0
    assert matrix[2].tolist() == [3.0, 3.0]  # exact "the" beats the earlier "The"
    assert matrix[3].tolist() == [2.0, 2.0]  # the first cased form wins
    with pytest.raises(DataError, match="none of the 2 vocabulary words"):
        load_word_vectors(write(tmp_path / "upper.txt", "THE 1 1\n"), vocab, lowercase=False)


def test_specials_are_not_looked_up(tmp_path):
    path = write(tmp_path / "glove.txt", "<unk> 5 5\n<pad> 6 6\nthe 1 1\n")
    vocab = Vocab(["<pad>", "<unk>", "the"])
    matrix, coverage = load_word_vectors(path, vocab)
    assert coverage == 1.0
    assert matrix[0].tolist() == [0.0, 0.0]
    assert matrix[1].tolist() != [5.0, 5.0]


def test_blank_lines_trailing_spaces_and_spaced_words_are_tolerated(tmp_path):
    text = "the 0.1 0.2 \n\n. . . 7 8\nmovie  1  2\n"  # glove.840B has words with spaces
    matrix, coverage = load_word_vectors(write(tmp_path / "glove.txt", text), VOCAB)
    assert coverage == pytest.approx(2 / 4)
    assert matrix[VOCAB.index("movie")].tolist() == [1.0, 2.0]


def test_missing_file_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.txt: word vector file not found"):
        load_word_vectors(tmp_path / "nowhere.txt", VOCAB)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("the 0.1 0.2 0.3\nmovie 1 2\n", 2),  # too few values
        ("the 0.1 0.2 0.3\nunused 1 2 3\ngood 1 2 3 4\n", 3),  # too many values
        ("2 4\nthe 0.1 0.2 0.3\n", 2),  # the header says 4
    ],
)
def test_inconsistent_dimensions_name_file_and_line(tmp_path, text, line):
    path = write(tmp_path / "glove.txt", text)
    with pytest.raises(DataError, match=rf"glove\.txt:{line}: inconsistent dimensions"):
        load_word_vectors(path, VOCAB)


def test_non_numeric_value_names_file_and_line(tmp_path):
    path = write(tmp_path / "glove.txt", "the 0.1 0.2 0.3\nmovie 1.0 abc 0.5\n")
    with pytest.raises(DataError, match=r"glove\.txt:2: non-numeric value 'abc'"):
        load_word_vectors(path, VOCAB)


def test_non_finite_value_names_file_and_line(tmp_path):
    path = write(tmp_path / "glove.txt", "the 0.1 nan 0.3\n")
    with pytest.raises(DataError, match=r"glove\.txt:1: non-finite"):
        load_word_vectors(path, VOCAB)


def test_no_vocabulary_word_found_is_a_data_error(tmp_path):
    path = write(tmp_path / "glove.txt", "unused 1 2 3\n")
    with pytest.raises(DataError, match=r"glove\.txt: none of the 4 vocabulary words"):
        load_word_vectors(path, VOCAB)


@pytest.mark.parametrize("text", ["", "\n\n", "3 300\n"])
def test_file_without_vectors_is_a_data_error(tmp_path, text):
    with pytest.raises(DataError, match="no word vectors"):
        load_word_vectors(write(tmp_path / "empty.txt", text), VOCAB)


def test_corrupt_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "vectors.txt.gz"
    path.write_bytes(b"this is not gzip data")
    with pytest.raises(DataError, match=r"vectors\.txt\.gz"):
        load_word_vectors(path, VOCAB)


@pytest.mark.parametrize("name", ["vectors.txt", "vectors.txt.gz"])
def test_save_then_load_round_trips_float32_exactly(tmp_path, name):
    tokens = ["the", "movie", "good", "bad"]
    matrix = torch.randn(4, 5, generator=torch.Generator().manual_seed(0)) * 1e-3
    path = tmp_path / "out" / name
    save_word_vectors(path, tokens, matrix)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as file:
        assert file.readline() == "4 5\n"
    loaded, coverage = load_word_vectors(path, VOCAB)
    assert coverage == 1.0
    assert torch.equal(loaded[2:], matrix)
    assert [entry.name for entry in path.parent.iterdir()] == [name]  # no temporary left


def test_save_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        save_word_vectors(tmp_path / "v.txt", ["two words"], torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\(V, E\)"):
        save_word_vectors(tmp_path / "v.txt", ["a", "b"], torch.zeros(3, 2))
    assert not list(tmp_path.iterdir())


class _Unprintable(str):
    """A token that fails while being written, to interrupt a save half-way."""

    def __format__(self, spec):
        raise RuntimeError("disk full")


def test_failed_save_leaves_the_old_file_in_place(tmp_path):
    path = tmp_path / "v.txt"
    save_word_vectors(path, ["old"], torch.ones(1, 2))
    before = path.read_text()
    with pytest.raises(RuntimeError, match="disk full"):
        save_word_vectors(path, ["new", _Unprintable("bad")], torch.zeros(2, 2))
    assert path.read_text() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["v.txt"]


def test_read_vector_words_gives_the_first_words_in_file_order(tmp_path):
    path = write(tmp_path / "w2v.txt", "5 3\n" + GLOVE + ". . . 1 2 3\nlast 1 2 3\n")
    assert read_vector_words(path, 2) == ["the", "movie"]
    assert read_vector_words(path, 100) == ["the", "movie", "unused", "good", "last"]
    assert read_vector_words(path, 0) == []
    with pytest.raises(DataError, match="not found"):
        read_vector_words(tmp_path / "nowhere.txt", 3)
