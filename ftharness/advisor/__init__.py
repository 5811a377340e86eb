"""ftharness.advisor"""
