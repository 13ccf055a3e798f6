"""lokirl.agents."""
