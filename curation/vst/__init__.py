"""The format's shared meaning: taxonomy, answers, reasoning traces, spatial text, geometry, scoring, vocabulary."""
