"""Offline work: data set loaders, replay evaluation and ranking metrics (ADR 0019).

It depends on the serving apps through their facades; no serving app imports it.
"""
