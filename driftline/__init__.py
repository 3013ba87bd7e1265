"""driftline"""
