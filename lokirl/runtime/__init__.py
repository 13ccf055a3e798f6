"""lokirl.runtime."""
