"""Adapters that make a model an :class:`teminal.eval.models.ModelAdapter` (SPEC §2):
``backbone`` (the tiny CLAP, msclap 2022/2023, any trained checkpoint of this repo) and
``laion`` (LAION-CLAP and CompA-CLAP checkpoints). Nothing heavy is imported here."""
