"""Tests behind a real front server (nginx), as the vendor's server is run."""
