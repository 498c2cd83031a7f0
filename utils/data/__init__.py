"""The data layer: datasets as in-memory tensors, the one sample container, known-answer hardness (mixing, injection).

Imports nothing from the layers above (engine, scores, studies, report)."""
