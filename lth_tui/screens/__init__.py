"""The app's screens: Setup, Run, Runs (+ Compare), Help and the small dialogs."""
