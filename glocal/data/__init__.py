"""Images in: image folders and labels, benchmark dataset layouts, webdataset shards, miniature and demo data."""
