"""Scoring any audio–language model (SPEC §2, §4): the model interface and its adapters
(:mod:`.models`, :mod:`.adapters`, :mod:`.specs`), the order scores in both directions and
three events (:mod:`.order`), the CompA-order reader (:mod:`.compa`). Nothing loads at import."""
