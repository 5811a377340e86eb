"""ftharness.compare"""
