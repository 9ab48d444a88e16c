"""fastnn in other people's tools: users of the model's public API, never used by it."""
