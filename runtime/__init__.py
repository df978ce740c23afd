"""Process-level plumbing shared by every package: atomic files, data root, seeding, torchrun environment."""
