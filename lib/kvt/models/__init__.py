"""One short model file per task family; each builds its attention from the registry."""
