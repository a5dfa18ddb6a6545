"""Terminal views (rich), plots and written reports."""
