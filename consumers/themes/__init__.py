"""Themes: live assignment, weekly clustering, continuity, keywords (pure: no Kafka, no database)."""
