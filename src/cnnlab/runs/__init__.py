"""The run folder: its files, their atomic writing, and reading a run back.

This layer sits below training, evaluation, export and inspection, which all use it.
"""
