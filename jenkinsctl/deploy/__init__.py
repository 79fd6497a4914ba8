"""Redeploy strategies behind one interface."""
