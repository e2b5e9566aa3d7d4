"""What a user runs: the command line, the run's lifecycle, display, export, the demo."""
