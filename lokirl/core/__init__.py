"""lokirl.core."""
