"""The personalized home experience: feed sections, ranking and interactions."""
