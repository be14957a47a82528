"""Training mixtures: a YAML recipe, its deterministic selection and its export in training formats."""
