"""One module per task family: what a train job and an eval job of that family do."""
