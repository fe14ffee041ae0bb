"""Tests of ml_app: data set loaders, replay evaluation, ranking metrics."""
