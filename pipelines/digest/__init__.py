"""The weekly product digest: weekly themes, HTML + Markdown rendering, announcement."""
