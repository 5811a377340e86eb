"""ftharness's built-in plugins, one module each. The core registers every module of this package."""
