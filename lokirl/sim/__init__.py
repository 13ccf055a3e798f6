"""lokirl.sim."""
