"""Versioned store migrations, one module each: mNNNN_<name>.py (see consumers/store/db.py).

Version numbers are reserved per area so parallel work never collides:
1–99 enriched feedback and themes, 100–199 normalizer dedup state, 200–299 alert state,
300–399 corrections (label, training).
"""
