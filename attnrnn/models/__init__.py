"""Task models built from the shared ``attnrnn.nn`` parts, one per file."""
