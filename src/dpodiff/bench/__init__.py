"""`dpodiff bench`: many prompts x algorithms, stored in SQLite as each run finishes, resumable, local or on Ray."""
