"""ftharness.planner"""
