"""The ESCO ingest worker: reads a release, encodes every skill, writes a versioned Qdrant collection."""
