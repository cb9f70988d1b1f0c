"""The TF-IDF + logistic regression baseline every neural classifier must beat.

Word 1-2-grams with sublinear tf, logistic regression with C chosen on the dev
set. scikit-learn is a benchmark-only dependency (``pip install 'attnrnn[bench]'``).
"""

from __future__ import annotations

import time

from attnrnn.data.readers import TextExample


def tfidf_logistic_regression(
    train: list[TextExample], dev: list[TextExample], test: list[TextExample]
) -> dict[str, float]:
    """Fit on ``train``, pick C on ``dev``, return dev and test accuracy."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.monotonic()
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2),
        sublinear_tf=True,
        lowercase=True,
        min_df=1,
        token_pattern=r"(?u)\b\w+\b|n't|'s",
    )
    train_features = vectorizer.fit_transform([example.text for example in train])
    dev_features = vectorizer.transform([example.text for example in dev])
    test_features = vectorizer.transform([example.text for example in test])
    train_labels = [example.label for example in train]
    best = None
    for c in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        model = LogisticRegression(C=c, max_iter=2000)
        model.fit(train_features, train_labels)
        dev_accuracy = model.score(dev_features, [example.label for example in dev])
        if best is None or dev_accuracy > best[0]:
            best = (dev_accuracy, c, model)
    assert best is not None
    dev_accuracy, c, model = best
    test_accuracy = model.score(test_features, [example.label for example in test])
    return {
        "dev_accuracy": float(dev_accuracy),
        "test_accuracy": float(test_accuracy),
        "C": c,
        "seconds": round(time.monotonic() - started, 1),
    }
