"""Local rehearsal servers and the images they need (test-bed plumbing)."""
