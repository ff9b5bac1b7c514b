"""Avatars: video intake, the lite and photo engines, the GeneFace++ adapter and the training job."""
