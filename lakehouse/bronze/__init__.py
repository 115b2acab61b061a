"""Bronze: source-aligned Delta tables, typed by contracts, with quarantine and watermarks."""
