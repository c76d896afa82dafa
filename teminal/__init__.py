"""teminal: teach CLAP a sense of time (TeminAL post-training) and measure it (ZSTE)."""
