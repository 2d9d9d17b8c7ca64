"""Typer command-line entry point."""
