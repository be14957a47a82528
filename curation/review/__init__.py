"""Domain operations on the curation state: flags, reviews and fixes, audit, undo; rules here, storage in db/."""
