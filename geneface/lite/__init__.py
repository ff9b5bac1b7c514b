"""The lite engine: a small person-specific lip-sync network trained on the uploaded video."""
