"""Datasets of the study's task families."""
